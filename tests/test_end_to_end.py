"""Every head x model trained on real text (gensim's Lee news corpus) learns a semantic signal.

The signal: for 20 pairs of words that belong together in this corpus (bin/laden, yasser/arafat,
fire/firefighters, palestinian/israeli, ...), where does one word rank among all words by cosine
similarity to the other? We take the median rank as a fraction of the vocabulary over both directions.
Random vectors give about 0.5 (0.62 measured). Calibration, 10 epochs on the 60k-token corpus, on
2 CPU cores: 0.004-0.015 for all six models (sg/cbow x neg/nce/softmax), so the threshold 0.05
("the partner is in the top 5% of the vocabulary") leaves a 3x margin and is still 10x below chance.
"""

import numpy as np
import pytest
from gensim.test.utils import datapath

from w2v_nce.config import make_config
from w2v_nce.tools.vectorfiles import load_vectors
from w2v_nce.run.train import train

PAIRS = [("bin", "laden"), ("al", "qaeda"), ("osama", "laden"), ("yasser", "arafat"), ("tora", "bora"),
         ("palestinian", "israeli"), ("hamas", "gaza"), ("fire", "firefighters"), ("taliban", "afghan"),
         ("suicide", "attacks"), ("south", "wales"), ("prime", "minister"), ("united", "states"),
         ("per", "cent"), ("security", "forces"), ("arafat", "sharon"), ("qantas", "unions"),
         ("fire", "fires"), ("police", "arrested"), ("workers", "unions")]
THRESHOLD = 0.05


def neighbour_rank(kv) -> float:
    v = kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)
    ranks = []
    for a, b in PAIRS:
        for x, y in ((a, b), (b, a)):
            sims = v @ v[kv.key_to_index[x]]
            ranks.append(((sims > sims[kv.key_to_index[y]]).sum() - 1) / (len(sims) - 1))
    return float(np.median(ranks))


@pytest.fixture(scope="module")
def lee():
    return datapath("lee_background.cor")


# auto: the fused CPU step for every head but softmax; torch: the PyTorch step at its default batch
HEADS = ["neg", "nce", "hs", "infonce", "sampled-softmax"]


@pytest.mark.parametrize("loss,kernel", [(h, "auto") for h in HEADS] + [("softmax", "auto")]
                         + [(h, "torch") for h in HEADS])
@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_semantic_signal_on_real_text(tmp_path, lee, model, loss, kernel):
    cfg = make_config(model=model, loss=loss, epochs=10, min_count=5, lowercase=True, seed=7, kernel=kernel)
    summary = train(cfg, lee, tmp_path / "run", progress=False, log=lambda *_: None)
    kv = load_vectors(tmp_path / "run")
    assert all(w in kv.key_to_index for p in PAIRS for w in p)
    score = neighbour_rank(kv)
    assert score < THRESHOLD, f"{model}-{loss}: median neighbour rank {score:.3f}"
    # the control: the same vocabulary with untrained (random) vectors is near chance
    kv.vectors = np.random.default_rng(0).uniform(-0.5, 0.5, kv.vectors.shape).astype(np.float32)
    assert neighbour_rank(kv) > 0.3
    # the reported loss is a per-example mean: below the uniform model's log V, above 0
    # hs: the sum of about log2 V terms, each at most log 2 in the uniform model; neg/nce: 1 + k terms
    bound = {"softmax": 0, "hs": np.log(len(kv.index_to_key)) * 2}.get(loss, 2 * 5)
    assert 0 < summary.loss < np.log(len(kv.index_to_key)) + bound, summary.loss


def test_the_exact_softmax_trains_at_its_default_batch_on_the_shipped_corpus(tmp_path):
    """Every example updates every output row of the exact softmax, so the PyTorch step's sum over a batch is large
    there: at 4,096 examples a step cbow-softmax diverged on the shipped corpus (this slice of it, 5 epochs: at step
    23; the whole file at step 28), as cbow-hs did at 1,024. Its default batch is hs's (plan.largest_summed_batch)."""
    import gzip
    from pathlib import Path
    with gzip.open(Path(__file__).parents[1] / "corpora" / "wiki10m.txt.gz", "rt", encoding="utf-8") as f:
        (tmp_path / "slice.txt").write_text(f.read(1_500_000), encoding="utf-8")
    cfg = make_config(model="cbow", loss="softmax", dim=16, epochs=5)
    summary = train(cfg, tmp_path / "slice.txt", tmp_path / "run", progress=False, log=lambda *_: None)
    # below the uniform model's loss
    assert np.isfinite(summary.loss) and 0 < summary.loss < np.log(summary.vocab_size), summary.loss


@pytest.mark.parametrize("kernel,threads,share", [("fused", 1, 1), ("fused", 1, 8), ("torch", 2, None)])
def test_cpu_runs_are_reproducible(tmp_path, lee, kernel, threads, share):
    cfg = make_config(model="sg", loss="nce", epochs=1, min_count=5, lowercase=True, seed=3, threads=threads,
                      kernel=kernel, shared_noise=share)
    train(cfg, lee, tmp_path / "a", progress=False, log=lambda *_: None)
    train(cfg, lee, tmp_path / "b", progress=False, log=lambda *_: None)
    a, b = load_vectors(tmp_path / "a"), load_vectors(tmp_path / "b")
    assert np.array_equal(a.vectors, b.vectors)


@pytest.mark.slow  # two compiles of the epoch's kernel, about a minute
@pytest.mark.parametrize("config", ["sg-neg", "cbow-neg"])
def test_the_run_that_compiles_gives_the_vectors_of_the_runs_after_it(tmp_path, lee, config):
    """A kernel numba compiles in the process runs other code than the same kernel loaded from its cache (the last
    bits, after a few batches): the first run after an install is compiled apart (jit_cache.compiled_apart) and gives,
    on one thread, the vectors of every run after it. Each run a process of its own, with an empty cache at first."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    code = (f"import w2v_nce; w2v_nce.train({str(lee)!r}, config={config!r}, seed=1, threads=1, epochs=1, "
            "out={out!r}, progress=False)")
    for run in ("a", "b"):
        p = subprocess.run([sys.executable, "-c", code.format(out=str(tmp_path / run))], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    assert np.array_equal(load_vectors(tmp_path / "a").vectors, load_vectors(tmp_path / "b").vectors)
