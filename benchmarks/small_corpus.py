"""docs/benchmarks-log.md section 11 (issue 36): a small corpus, gensim's Lee corpus (60k tokens; 5 epochs, dim 100, window 5,
k 5, sample 1e-3, min_count 5, 2 threads / workers). The API once warm in one process against gensim's Word2Vec on the
same model, in turn, best and median of 7 each; and the first call in the process.

    python benchmarks/small_corpus.py [--runs 7]

The CLI's cold start is timed as a whole command from outside (see section 11): /usr/bin/time or hyperfine on
`w2v-nce train LEE --out DIR --overwrite --no-progress`."""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence
from gensim.test.utils import datapath

import w2v_nce

LEE = datapath("lee_background.cor")


def main(runs: int) -> None:
    out = Path(tempfile.mkdtemp()) / "small"
    t = time.perf_counter()
    w2v_nce.train(LEE, out, progress=False)
    print(f"the first call in this process: {time.perf_counter() - t:.2f} s (imports, numba's cache, the run)")
    Word2Vec(LineSentence(LEE), workers=2)  # gensim warm too
    for model in ("sg", "cbow"):
        ours, theirs = [], []
        for _ in range(runs):
            t = time.perf_counter()
            w2v_nce.train(LEE, out, overwrite=True, progress=False, model=model, threads=2)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            Word2Vec(LineSentence(LEE), sg=int(model == "sg"), workers=2)
            theirs.append(time.perf_counter() - t)
        print(f"{model}-neg: ours best {min(ours):.3f} s, median {statistics.median(ours):.3f} s; gensim best "
              f"{min(theirs):.3f} s, median {statistics.median(theirs):.3f} s; ours / gensim (medians) "
              f"{statistics.median(ours) / statistics.median(theirs):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    main(parser.parse_args().runs)
