"""The CUDA kernels (step/cuda.py, step/cuda_update.py) in numba's CUDA simulator, on the CPU, for every head: with one worker they
are the sequential update of the float64 reference built from the head's candidates; with several, every
example is processed once; and the start-up self-check passes and catches a kernel that is off. The simulator
needs NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported, so the checks run in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2v_nce.step import cpu, kernel, update

from .test_step_cpu import SAMPLED, candidates_of, make_problem, reference

pytestmark = pytest.mark.skipif(cpu.numba is None, reason="numba is not installed")
ROOT = Path(__file__).resolve().parents[1]
CASES = [("sg", loss) for loss in SAMPLED] + [("cbow", loss) for loss in SAMPLED]
SUBWORD_CASES = [("sg", "neg"), ("sg", "infonce"), ("sg", "hs"), ("cbow", "nce"), ("cbow", "sampled-softmax")]


def test_cuda_kernels_in_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run([sys.executable, "-c", "from tests.test_step_cuda import checks; checks()"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok") == len(CASES) + len(SUBWORD_CASES) + 4, r.stdout


def run_kernel(model, ctx, valid, targets, lr, workers, need_loss=True, share=1, record=True):
    """cuda_step.launch on numpy copies (the simulator's device arrays); returns them after the step. Without
    record, rows and coef are (1, C) placeholders, as in training: the kernel leaves them alone. A model with
    subwords (model.sub_offsets) runs with its words' rows."""
    from w2v_nce.step import cuda as cuda_step

    head = model.head
    family, tab, width = kernel.tables(head)
    tab = tab._replace(bias_now=True, share=share)  # as cuda_step.train_step runs it
    inp, out, bias = (a.numpy().copy() for a in (model.input, head.weight, head.bias))
    n = len(targets) if record else 1
    rows, coef = np.zeros((n, width), np.int64), np.zeros((n, width), np.float32)
    loss = np.zeros(len(targets), dtype=np.float32)
    subwords = None if model.sub_offsets is None else (model.sub_offsets.numpy(), model.sub_rows.numpy())
    cuda_step.launch(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab, 7,
                     workers=workers, subwords=subwords)
    return inp, out, bias, rows, loss


def checks():
    from numba import config
    assert config.ENABLE_CUDASIM
    for arch, loss in CASES:
        # dim 40: two components a lane, the second only on lanes 0-7
        model, ctx, valid, targets = make_problem(arch, loss, n=6, dim=40)
        inp, out, bias, rows, losses = run_kernel(model, ctx, valid, targets, 0.05, workers=1)
        head = model.head
        if loss != "hs":  # the noise ids are the CPU kernel's draws of the same seed (its packed table)
            tab = kernel.tables(head)[1]
            draws = [[update._noise(np.uint64(7), i * rows.shape[1] + j, tab.prob, tab.entries)
                      for j in range(1, rows.shape[1])] for i in range(len(rows))]
            assert (rows[:, 1:] == np.array(draws)).all()
        cand = candidates_of(head, targets, rows)
        assert (rows == cand.rows.numpy()).all()
        want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)), ctx, valid, cand, 0.05,
                         bias_now=True)
        for got, exp in zip((inp, out, bias, losses), want):
            # atol scaled to the entries' size: see test_step_cpu.test_kernel_equals_the_sequential_reference
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(exp).max())))
        print("ok", arch, loss)
    # subwords: every word's own row and its n-gram rows (repeats included); skip-gram's centre carries its hidden
    # vector over its examples, which equals the reference's sequential update with each word expanded
    from .test_subwords_train import expanded, with_subwords
    for arch, loss in SUBWORD_CASES:
        base, ctx, valid, targets = make_problem(arch, loss, n=10, dim=40)
        model = with_subwords(base)
        if arch == "sg":  # a centre's examples in a row, as skip-gram makes them; words with a bucket twice and not
            off, sub = model.sub_offsets.numpy(), model.sub_rows.numpy()
            twice = [len(set(sub[off[w]:off[w + 1]])) < off[w + 1] - off[w] for w in range(model.vocab_size)]
            centres = [int(np.flatnonzero(twice)[0]), int(np.flatnonzero(~np.array(twice))[0])] * 2
            ctx[:, 0] = np.repeat(centres, 3)[:len(ctx)]
        inp, out, bias, rows, losses = run_kernel(model, ctx, valid, targets, 0.05, workers=1)
        head = model.head
        want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)),
                         *expanded(model, ctx, valid), candidates_of(head, targets, rows), 0.05, bias_now=True)
        for got, exp in zip((inp, out, bias, losses), want):
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(exp).max())))
        assert np.abs(inp[model.vocab_size:] - model.input.numpy()[model.vocab_size:]).max() > 1e-3
        print("ok subwords", arch, loss)
    # several workers, examples not divisible by them: with lr = 0 every example's loss is the reference's
    model, ctx, valid, targets = make_problem("cbow", "nce", n=13, dim=40)
    *_, rows, losses = run_kernel(model, ctx, valid, targets, 0.0, workers=4)
    head = model.head
    want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)), ctx, valid,
                     candidates_of(head, targets, rows), 0.0)[3]
    np.testing.assert_allclose(losses, want, rtol=1e-4)
    print("ok workers")
    # shared noise (--shared-noise 3): the draws of each run's first example, and the reference of those candidates
    model, ctx, valid, targets = make_problem("sg", "nce", n=9, dim=40)
    inp, out, bias, rows, losses = run_kernel(model, ctx, valid, targets, 0.05, workers=1, share=3)
    assert (rows[:3, 1:] == rows[0, 1:]).all() and (rows[3:6, 1:] == rows[3, 1:]).all()
    head = model.head
    want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)), ctx, valid,
                     candidates_of(head, targets, rows), 0.05, bias_now=True)
    for got, exp in zip((inp, out, bias, losses), want):
        np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(exp).max())))
    print("ok shared noise")
    # training's launches record nothing: the same update, every loss, and the (1, C) placeholders untouched
    for arch, loss in (("sg", "neg"), ("cbow", "infonce")):
        model, ctx, valid, targets = make_problem(arch, loss, n=7, dim=40)
        want = run_kernel(model, ctx, valid, targets, 0.05, workers=1)
        got = run_kernel(model, ctx, valid, targets, 0.05, workers=1, record=False)
        for g, w in zip(got[:3] + got[4:], want[:3] + want[4:]):
            np.testing.assert_array_equal(g, w)
        assert not got[3].any()
    print("ok placeholders")
    # the start-up check that a GPU run makes before it trusts the kernels: passes here, and catches a kernel
    # that is off by 1% in the learning rate
    from w2v_nce.step import cuda as cuda_step
    assert cuda_step.self_check(n=8) is None
    launch = cuda_step.launch
    cuda_step.launch = lambda *a, **kw: launch(*a[:10], a[10] * 1.01, *a[11:], **kw)  # a[10]: lr
    try:
        assert "input rows differ from the CPU kernel's" in cuda_step.self_check(n=8)
    finally:
        cuda_step.launch = launch
    print("ok self-check")
