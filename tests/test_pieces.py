"""Training by pieces (pieces.py): the pieces tile the corpus; sub-sampling, the dynamic window and the examples of a
piece are the hashes' and word2vec's rules exactly (against a reference written here from the rules); the draws are
statistically right; a piece trains the same whichever thread takes it; one thread is reproducible run after run."""

import numpy as np
import pytest
from gensim.test.utils import datapath
from scipy import stats

import w2v_nce
from w2v_nce.step import cpu, pieces
from w2v_nce.run.trainer import Trainer
from w2v_nce.model.sampling import keep_probs
from w2v_nce.corpus.vocab import SEPARATOR

pytestmark = pytest.mark.skipif(cpu.numba is None, reason="numba is not installed")
MASK = (1 << 64) - 1
LEE = datapath("lee_background.cor")


def h(key: int, m: int) -> int:
    """splitmix64 of key + m·golden, in Python's integers: the reference of pieces._hash."""
    z = (key + m * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def corpus(n=20000, v=300, seed=0) -> np.ndarray:
    """Zipf-like ids with a line break every 3-40 tokens."""
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.3, n) - 1, v - 1).astype(np.int32)
    breaks = np.cumsum(rng.integers(3, 40, n // 3))
    ids[breaks[breaks < n]] = SEPARATOR
    return ids


def reference(ids, start, end, keep, key, window, sg):
    """The examples of the piece [start, end) by word2vec's rules: the kept tokens (coin < keep) of each line, each
    centre's window 1..W from its position's hash, its contexts the kept tokens within it on its line."""
    kept = [p for p in range(len(ids)) if ids[p] != SEPARATOR
            and np.float32(h(key ^ 1, p) & 0xFFFFFFFF) * np.float32(2.3283064365386963e-10) < keep[ids[p]]]
    line = np.cumsum(ids == SEPARATOR)
    out = []
    for a, p in enumerate(kept):
        if not start <= p < end:
            continue
        b = 1 + (((h(key ^ 2, p) >> 32) * window) >> 32)
        slots = []
        for o in list(range(-window, 0)) + list(range(1, window + 1)):
            q = a + o
            ok = abs(o) <= b and 0 <= q < len(kept) and line[kept[q]] == line[p]
            slots.append((ids[kept[q]] if ok else None, ok))
        if sg:
            out += [(c, ids[p]) for c, ok in slots if ok]
        elif any(ok for _, ok in slots):
            out.append((tuple(c for c, ok in slots if ok), ids[p]))
    return out


def compiled(ids, start, end, keep, key, window, sg):
    n = end - start + 2 * window + 1
    ctx = np.zeros((2 * window * n, 1 if sg else 2 * window), np.int64)
    valid = np.ones(ctx.shape, np.bool_)
    targets = np.zeros(len(ctx), np.int64)
    m = pieces._all_examples(ids, start, end, keep, key, window, ctx, valid, targets, np.zeros(n, np.int64),
                             np.zeros(n, np.int32), np.zeros(n, np.int64))
    if sg:
        return [(ctx[i, 0], targets[i]) for i in range(m)]
    return [(tuple(ctx[i][valid[i]]), targets[i]) for i in range(m)]


def test_pieces_tile_the_corpus_chunk_by_chunk():
    for tokens, chunk in ((0, 1000), (1, 1000), (5000, 1000), (1_000_000, 1_000_000), (2_500_001, 1_000_000)):
        size = pieces.piece_tokens(tokens, chunk)
        assert size == min(chunk, pieces.PIECE_MAX) or (size & (size - 1) == 0 and pieces.PIECE_MIN <= size)
        b = pieces.bounds(tokens, chunk, size)
        assert b[0, 0] == 0 and b[-1, 1] == tokens and (b[1:, 0] == b[:-1, 1]).all() and (b[:, 1] >= b[:, 0]).all()
        assert all(s // chunk == (e - 1) // chunk for s, e in b if e > s)  # never across a chunk's end
    ids = corpus(50_000)
    b = pieces.bounds(len(ids), 7000, 1024)
    assert pieces._words(ids, b, 7000).tolist() == [int((ids[s:e] != SEPARATOR).sum()) for s, e in b]


@pytest.mark.parametrize("sg", [True, False], ids=["sg", "cbow"])
def test_a_pieces_examples_are_word2vecs(sg):
    """Sub-sampling, windows and examples of pieces that start mid-line, end mid-line and meet other pieces: the
    reference's, example for example."""
    ids = corpus(3000, v=50)
    keep = keep_probs(np.bincount(ids[ids >= 0], minlength=50) + 1, 1e-2).astype(np.float32)
    assert 0.2 < keep.min() < 1.0  # sub-sampling drops words here
    key, window = int(pieces.epoch_key(7, 2)), 4
    for start, end in ((0, 700), (700, 1400), (1401, 1402), (2900, 3000), (5, 5)):
        want = reference(ids, start, end, keep, key, window, sg)
        assert compiled(ids, start, end, keep, np.uint64(key), window, sg) == want
    # the pieces of a corpus make its examples: every centre once
    every = sum((compiled(ids, s, e, keep, np.uint64(key), window, sg) for s, e in pieces.bounds(3000, 3000, 1024)), [])
    assert every == reference(ids, 0, 3000, keep, key, window, sg)


def test_skip_grams_pairs_made_centre_first_share_draws_across_centres():
    """share_across: the k-th example of each of N consecutive centres shares the draw of the first of them that has
    a k-th; a centre's own examples never share one (they have one input word). Centres of 3, 2, 4, 1 and 3 examples
    from row 10, N = 2: centres 0-1 and 2-3 pair up, centre 4 starts a group of its own."""
    first = np.full(30, -9, np.int64)
    slots = np.zeros(4, np.int64)
    n = 10
    for centre, count in enumerate([3, 2, 4, 1, 3]):
        pieces.share_across(first, n, n + count, centre, 2, slots)
        n += count
    assert first[10:23].tolist() == [10, 11, 12, 10, 11, 15, 16, 17, 18, 15, 20, 21, 22]
    for centre_rows in ([10, 11, 12], [15, 16, 17, 18], [20, 21, 22]):
        assert len(set(first[centre_rows])) == len(centre_rows)


def test_the_draws_are_what_they_should_be():
    """Kept tokens: each word kept with its keep probability (binomial tests); windows uniform on 1..W (chi-square)."""
    ids = np.repeat(np.arange(4, dtype=np.int32), 50_000)
    keep = np.array([0.1, 0.35, 0.8, 1.0], np.float32)
    key = pieces.epoch_key(3, 0)
    flags = np.array([pieces._kept(ids, q, keep, key) for q in range(0, len(ids), 7)])
    words = ids[::7]
    for w in range(4):
        k, n = int(flags[words == w].sum()), int((words == w).sum())
        assert stats.binomtest(k, n, float(keep[w])).pvalue > 1e-4, (w, k / n)
    window = 5
    eff = np.zeros(60_001, np.int64)
    line = np.zeros(60_001, np.int32)
    words_ = np.zeros(60_001, np.int64)
    text = np.zeros(60_000, np.int32)  # word 0 kept always
    pieces._compact(text, 0, 60_000, np.ones(1, np.float32), key, window, words_, line, eff)
    counts = np.bincount(eff[:60_000], minlength=window + 1)[1:]
    assert counts.sum() == 60_000 and stats.chisquare(counts).pvalue > 1e-4


def test_a_piece_trains_the_same_on_any_thread(tmp_path):
    """A piece's draws depend on the seed, the epoch and the piece, not on the thread: the same piece trained with
    thread 0's and with thread 1's buffers (and copies of the hot rows: copies.py) gives the same model, to the bit;
    and one thread is reproducible."""
    from w2v_nce.step import plan
    from w2v_nce.run import rundir
    from w2v_nce.config import make_config
    run = w2v_nce.train(LEE, tmp_path / "r", epochs=1, threads=1, dim=16, progress=False, keep_corpus=True)
    cfg = make_config(threads=2, dim=16)
    trainer = Trainer(cfg, run.path, rundir.read_vocab(run.path), plan.make_plan(cfg))
    t = trainer.loop.threads
    start = [a.copy() for a in t.params]
    models = []
    for thread in (0, 1):
        for a, b in zip(t.params, start):
            a[...] = b
        t.piece(3, 0, 0.025, thread)
        m = trainer.model  # its own rows (t.params: the threads' copies of the hot rows after them)
        models.append([a.numpy().copy() for a in (m.input, m.head.weight, m.head.bias)])
    assert all(np.array_equal(a, b) for a, b in zip(*models))
    assert not np.array_equal(models[0][0], start[0][:len(models[0][0])])  # it trained
    again = w2v_nce.train(LEE, tmp_path / "again", epochs=1, threads=1, dim=16, progress=False)
    assert np.array_equal(again.vectors.vectors, run.vectors.vectors)


@pytest.mark.parametrize("model,loss", [("sg", "neg"), ("cbow", "hs"), ("sg", "infonce")])
def test_rows_longer_than_numba_passes_into_its_threads_train(tmp_path, model, loss):
    """--dim 101 and above (300 is common) failed to compile: a kernel of the dim's own takes a tuple of dim elements
    into the threads' parallel region, longer than numba passes there (NUMBA_PARFOR_MAX_TUPLE_SIZE, 100). Those
    dims train with the kernel that reads the length (update.fixed_for), every family, two threads."""
    from w2v_nce.step import update
    dim = cpu.numba.config.PARFOR_MAX_TUPLE_SIZE + 1
    assert update.fixed_for(dim) == () and len(update.fixed_for(dim - 1)) == dim - 1
    run = w2v_nce.train(LEE, tmp_path / "r", model=model, loss=loss, epochs=1, threads=2, dim=dim, progress=False)
    vectors = run.vectors.vectors
    assert vectors.shape[1] == dim and np.isfinite(vectors).all()
    assert np.abs(vectors).max() > 1 / dim  # trained: rows start in [-1/dim, 1/dim)


def test_each_epoch_takes_the_pieces_in_an_order_of_its_own(tmp_path):
    """arrange: every piece once an epoch, in a permutation drawn from the seed and the epoch (another each epoch,
    the same in another process with the seed), the words before each place counted in that order; the file's
    order where asked."""
    from w2v_nce.step import plan
    from w2v_nce.run import rundir
    from w2v_nce.config import make_config
    run = w2v_nce.train(LEE, tmp_path / "r", epochs=1, threads=1, dim=16, progress=False, keep_corpus=True,
                        chunk_tokens=20_000)
    cfg = make_config(threads=1, dim=16, chunk_tokens=20_000)

    def threads():
        return Trainer(cfg, run.path, rundir.read_vocab(run.path), plan.make_plan(cfg)).loop.threads

    t, other = threads(), threads()
    n = len(t.bounds)
    assert n > 20
    orders = []
    for epoch in (0, 1):
        t.arrange(epoch)
        other.arrange(epoch)
        assert sorted(t.order) == list(range(n)) and np.array_equal(t.order, other.order)
        assert np.array_equal(t.before, np.concatenate(([0], np.cumsum(t.words[t.order]))))
        orders.append(t.order.copy())
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], np.arange(n))
    t.arrange(1, shuffled=False)
    assert np.array_equal(t.order, np.arange(n)) and t.before[-1] == t.words.sum()
    # a report a chunk's worth of places, the last place included
    per = -(-20_000 // t.size)
    assert np.array_equal(np.flatnonzero(t.chunk_end), np.unique(np.r_[np.arange(per - 1, n, per), n - 1]))
