"""Each thread's own copies of the hot rows (step/copies.py): a merge gives a thread's changes and takes the others',
exactly; the examples and noise draws name the thread's copies; a thread alone on copies trains what it trains
without them, but for rounding; one thread has none; a run on two threads checkpoints the model's own rows."""

import numpy as np
import pytest
import torch
from gensim.test.utils import datapath

import w2v_nce
from w2v_nce.config import make_config
from w2v_nce.run import rundir
from w2v_nce.run.trainer import Trainer
from w2v_nce.step import copies, cpu, plan, update
from w2v_nce.step.kernel import NOISE, TREE, Tables

pytestmark = pytest.mark.skipif(cpu.numba is None, reason="numba is not installed")
LEE = datapath("lee_background.cor")


def _tables(source, hot, at):
    f32, i64, i8 = np.zeros(1, np.float32), np.zeros(1, np.int64), np.zeros(1, np.int8)
    return Tables(source, f32, f32, i64, False, i64, i64, i8, True, hot=hot, hot_at=at)


def test_a_merge_gives_the_threads_changes_and_takes_the_others():
    """shared += copy - base, then copy = base = shared: the thread's changes since it took the rows, added to the
    other threads' (given meanwhile), in every hot row of the inputs, outputs and biases; rows above the hot ones
    and the other thread's copies untouched."""
    rng = np.random.default_rng(0)
    rows, hot, dim = 10, 3, 8
    out, inp = rng.standard_normal((rows + 2 * hot, dim), np.float32), rng.standard_normal((rows + 2 * hot, dim),
                                                                                             np.float32)
    bias = rng.standard_normal(rows + 2 * hot).astype(np.float32)
    params = update.Params(inp, out, bias)
    t = 1  # the second thread: its copies at rows + hot
    base = [out[:hot].copy(), inp[:hot].copy(), bias[:hot].copy()]  # the rows as it took them
    for a, b in zip((out, inp, bias), base):
        a[rows + t * hot:rows + (t + 1) * hot] = b + 0.5  # its changes: + 0.5
        a[:hot] += 0.25  # the other thread's, given meanwhile
    before = [a.copy() for a in (out, inp, bias)]
    own = copies.Own(hot, rows + t * hot, *base)
    copies.merge(params, _tables(NOISE, hot, rows + t * hot), own)
    for a, b, old in zip((out, inp, bias), (own.out_base, own.in_base, own.bias_base), before):
        np.testing.assert_allclose(a[:hot], old[:hot] + 0.5, rtol=1e-6)  # both threads' changes
        assert np.array_equal(a[rows + t * hot:rows + (t + 1) * hot], a[:hot])  # its copy the shared rows
        assert np.array_equal(b, a[:hot])  # and its base
        assert np.array_equal(a[hot:rows + t * hot], old[hot:rows + t * hot])  # the rest untouched


@pytest.mark.parametrize("source", [NOISE, TREE])
def test_a_blocks_examples_name_the_threads_copies(source):
    """relabel: an input word below in_hot names row in_at + w; a target below the tab's hot names hot_at + w where
    targets are output rows (the noise heads), and stays a word where they name a path (hs)."""
    ctx = np.array([[0, 5, 2], [7, 1, 9], [3, 3, 4]], np.int64)
    targets = np.array([1, 4, 8], np.int64)
    batch = update.Batch(ctx.copy(), np.ones((3, 3), np.bool_), targets.copy(), np.zeros((3, 2), np.int64),
                         np.zeros((3, 2), np.float32), np.zeros(3, np.float32))
    tab = _tables(source, 0 if source == TREE else 4, 100)
    own = copies.Own(3, 200, np.zeros((4, 2), np.float32), np.zeros((3, 2), np.float32), np.zeros(4, np.float32))
    copies.relabel(batch, 2, tab, own)  # the block's first 2 examples only
    assert batch.ctx.tolist() == [[200, 5, 202], [7, 201, 9], [3, 3, 4]]
    assert batch.targets.tolist() == ([101, 4, 8] if source == NOISE else [1, 4, 8])


def test_a_noise_draw_names_the_threads_copy():
    """A noise draw of a hot word gives the thread's copy; one equal to the (relabelled) target is dropped where the
    head drops them. (One word: every draw is word 0.)"""
    tab = _tables(NOISE, 1, 100)._replace(prob=np.ones(1, np.float32), alias=np.zeros(1, np.int64),
                                          shift=np.zeros(101, np.float32), drop_hits=True)
    rows = np.zeros((1, 6), np.int64)
    for target, used in ((100, False), (5, True)):
        r, positive, shift, kept = update._draw(rows, 0, 0, 1, 2, 6, target, np.uint64(7), tab)
        assert (r, positive, kept) == (100, False, used)
    assert update._copy_of.py_func(3, 4, 100) == 103 and update._copy_of.py_func(4, 4, 100) == 4


def _trainer(tmp_path, threads, **flags):
    run = w2v_nce.train(LEE, tmp_path / "r", epochs=1, threads=1, dim=16, progress=False, keep_corpus=True, **flags)
    cfg = make_config(threads=threads, dim=16, **flags)
    return Trainer(cfg, run.path, rundir.read_vocab(run.path), plan.make_plan(cfg))


@pytest.mark.parametrize("loss", ["neg", "nce", "infonce", "hs"])
@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_a_thread_alone_on_copies_trains_what_it_trains_without(tmp_path, model, loss):
    """The same piece trained by a thread of a two-thread run (its examples on its copies, merged at each block's
    end) and by a one-thread run (no copies): the same model but for float32 rounding (shared + (copy - base) is the
    copy up to rounding); and the thread's copies are the shared rows after it."""
    models, start = [], None
    for threads in (1, 2):
        trainer = _trainer(tmp_path / str(threads), threads, model=model, loss=loss, seed=3)
        t, m = trainer.loop.threads, trainer.model
        for p in (m.input, m.head.weight, m.head.bias):  # the same start, with every score away from 0
            p.data[:] = torch.as_tensor(np.random.default_rng(1).standard_normal(p.shape) * 0.1, dtype=torch.float32)
        start = m.input.numpy().copy()
        for k in range(3):
            t.piece(k, 0, 0.025, threads - 1)
        models.append([p.numpy().copy() for p in (m.input, m.head.weight, m.head.bias)])
        c = t.copies
        if threads == 1 or (loss, model) == ("hs", "sg"):  # skip-gram's hs copies none (copies.py)
            assert c.in_hot == c.out_hot == 0 and np.shares_memory(t.params.inp, m.input.numpy())
            assert t.params.out.shape == m.head.weight.shape
            continue
        assert c.in_hot > 0 and c.out_hot == (0 if loss == "hs" else min(copies.HOT, m.head.weight.shape[0]))
        assert np.shares_memory(t.params.out, m.head.weight.numpy()) and len(t.params.out) == (
            len(m.head.weight) + 2 * c.out_hot)
        mine = slice(c.in_rows + c.in_hot, c.in_rows + 2 * c.in_hot)  # thread 1's copies
        assert np.array_equal(t.params.inp[mine], t.params.inp[:c.in_hot])
        assert np.array_equal(c.bases[1][1], t.params.inp[:c.in_hot])
    for a, b in zip(*models):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not np.array_equal(models[0][0], start)  # it trained


def test_two_threads_checkpoint_the_models_own_rows(tmp_path):
    """A run on two threads: its vectors finite, and its checkpoint's matrices the model's shapes (the copies after
    them are the threads')."""
    run = w2v_nce.train(LEE, tmp_path / "r", epochs=2, threads=2, dim=16, model="cbow", progress=False)
    assert np.isfinite(run.vectors.vectors).all()
    words = rundir.read_vocab(run.path).words
    state = rundir.load_checkpoint(run.path, words, make_config(dim=16, model="cbow"))
    assert state["input"].shape == (len(words), 16)
