"""The suite's training kernels compiled on the second core while the first runs the tests (tests/conftest.py).

A fresh checkout has no machine code in numba's cache: the suite's tests compile 12 kernels of the pieces' epoch
({sg, cbow} x the three kinds of head x dim 100 and any other dim) and 12 of the batch step, about 6 of its 15 minutes
on 2 cores, one after another in the tests' one process. This process compiles the same kernels, in about the order
the tests first need them, through the paths a run takes (jit_cache.compiled_apart): where a test reaches a kernel this
process is compiling, it waits for it and loads it (the kernels' turns), and never compiles it twice. It trains nothing
that a test reads, and the tests pass without it (W2V_NCE_PREWARM=0), only slower.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (model, loss) of each kind of head in the order the test files first train them (test_api, test_cli, test_copies,
# then test_end_to_end at dim 100)
PIECES = [("sg", "neg"), ("cbow", "nce"), ("cbow", "hs"), ("cbow", "infonce"), ("sg", "hs"), ("sg", "infonce")]
LATER = [("cbow", "hs"), ("cbow", "neg"), ("cbow", "infonce"), ("sg", "hs"), ("sg", "neg"), ("sg", "infonce")]


def main() -> None:
    import w2v_nce
    from gensim.test.utils import datapath

    from tests.test_step_cpu import make_problem
    from w2v_nce.step import cpu

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        text = f.read().splitlines()[:20]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "text.txt"
        corpus.write_text("\n".join(text) + "\n", encoding="utf-8")
        # the pieces' epoch: any dim but 100 shares one kernel, 100 has its own (step.update.fixed_for)
        for dim, heads in ((16, PIECES), (100, LATER)):
            for model, loss in heads:
                w2v_nce.train(corpus, Path(tmp) / f"{model}-{loss}-{dim}", model=model, loss=loss, dim=dim, epochs=1,
                              min_count=1, threads=2, progress=False)
    # the batch step (test_step_cpu and the chunk loop), as its tests make it
    for model in ("cbow", "sg"):
        for loss in ("hs", "infonce", "neg"):
            for dim in (100, 16):
                head = make_problem(model, loss, dim=dim)[0].head
                cpu.warm_up(head, 1 if model == "sg" else 6)


if __name__ == "__main__":
    os.nice(19)  # behind the tests where both want a core: a test whose threads meet at every step waits for the
    # one that shares its core with a compile
    sys.path.insert(0, str(ROOT))
    main()
