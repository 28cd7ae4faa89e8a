"""The CUDA kernel (fused_cuda.py) in numba's CUDA simulator, on the CPU: with one worker it is the
sequential update of the float64 reference; with several, every example is processed once. The
simulator needs NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported, so the checks run in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2v_nce import fused

from .test_fused import make_problem, reference

pytestmark = pytest.mark.skipif(fused.numba is None, reason="numba is not installed")
ROOT = Path(__file__).resolve().parents[1]


def test_cuda_kernel_in_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run([sys.executable, "-c", "from tests.test_fused_cuda import checks; checks()"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok") == 6, r.stdout


def run_kernel(model, ctx, valid, targets, lr, workers, need_loss=True):
    """fused_cuda.launch on numpy copies (the simulator's device arrays); returns them after the step."""
    from w2v_nce import fused_cuda

    head = model.head
    inp, out, bias, shift = (a.numpy().copy() for a in (model.input, head.weight, head.bias, head.shift))
    rows = np.zeros((len(targets), 1 + head.k), dtype=np.int64)
    rows[:, 0] = targets
    coef = np.zeros(rows.shape, dtype=np.float32)
    loss = np.zeros(len(targets), dtype=np.float32)
    fused_cuda.launch(inp, out, bias, shift, ctx, valid, rows, coef, 7, head.sampler.prob.numpy(),
                      head.sampler.alias.numpy(), lr, not head.nce, need_loss, loss, workers=workers)
    np.add.at(bias, rows.reshape(-1), coef.reshape(-1))  # what train_step does after the launch
    return inp, out, bias, shift, rows, loss


def checks():
    from numba import config
    assert config.ENABLE_CUDASIM
    for arch, loss in [("sg", "neg"), ("sg", "nce"), ("cbow", "neg"), ("cbow", "nce")]:
        # dim 40: two components a lane, the second only on lanes 0-7
        model, ctx, valid, targets = make_problem(arch, loss, n=24, dim=40)
        inp, out, bias, shift, rows, losses = run_kernel(model, ctx, valid, targets, 0.05, workers=1)
        # the noise ids are the CPU kernel's draws of the same seed
        draws = [[fused._noise(np.uint64(7), i * rows.shape[1] + j, model.head.sampler.prob.numpy(),
                               model.head.sampler.alias.numpy()) for j in range(1, rows.shape[1])]
                 for i in range(len(rows))]
        assert (rows[:, 1:] == np.array(draws)).all()
        head = model.head
        want = reference(model.input.numpy(), head.weight.numpy(), head.bias.numpy(), shift.astype(np.float64),
                         ctx, valid, rows, 0.05, not head.nce)
        for got, exp in zip((inp, out, bias, losses), want):
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5)
        print("ok", arch, loss)
    # several workers, examples not divisible by them: with lr = 0 every example's loss is the reference's
    model, ctx, valid, targets = make_problem("cbow", "nce", n=37, dim=40)
    *_, rows, losses = run_kernel(model, ctx, valid, targets, 0.0, workers=4)
    head = model.head
    want = reference(model.input.numpy(), head.weight.numpy(), head.bias.numpy(), head.shift.numpy(), ctx, valid,
                     rows, 0.0, False)[3]
    np.testing.assert_allclose(losses, want, rtol=1e-4)
    print("ok workers")
    # the start-up check that a GPU run makes before it trusts the kernel: passes here, and catches a kernel
    # that is off by 1% in the learning rate
    from w2v_nce import fused_cuda
    assert fused_cuda.self_check() is None
    launch = fused_cuda.launch
    fused_cuda.launch = lambda *a, **kw: launch(*a[:11], a[11] * 1.01, *a[12:], **kw)
    try:
        assert "input rows differ from the CPU kernel's" in fused_cuda.self_check()
    finally:
        fused_cuda.launch = launch
    print("ok self-check")
