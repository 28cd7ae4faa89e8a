"""The fused GPU training step for the NEG and NCE heads: fused.py's per-example update as a CUDA kernel.

Why not the PyTorch step with a large batch: a GPU needs hundreds of thousands of examples per step to
be busy, and summed mini-batch gradients at that size overshoot. A frequent word repeats thousands of
times in one batch, and all its gradients are taken at the same stale parameters. Skip-gram at batch
65,536 or 262,144 diverged within 30 steps; capping each row's step kept it finite but lost quality
(BENCHMARKS.md section 3).

How: Hogwild, as on the CPU, with many more workers. A worker is one warp (32 threads, one block). It
takes a contiguous share of the launch's examples and runs fused.py's loop over it: each lane holds every
32nd component of the hidden vector and of its gradient, and a dot product is a warp sum. The updates are
atomic adds, so no update is lost; the biases are summed over the launch and applied after it, as on the CPU.
How stale a read can be is set by the number of workers in flight, WORKERS, and not by the launch size.
So a launch can hold a million examples, which amortises the launch and the Python loop, while the
staleness stays that of a 4,096-example mini-batch. At that batch size the PyTorch step matched or beat the
sequential CPU step's scores (BENCHMARKS.md sections 1, 3 and 6).

Noise: fused.noise_draw, the same counter-based hash of the batch seed as on the CPU. With one worker
the kernel is the CPU kernel's sequential update exactly, up to float rounding. tests/test_fused_cuda.py
checks it in numba's CUDA simulator, with one worker against the float64 reference and with several
workers for the Hogwild path.

This module imports numba.cuda, so import it only for a CUDA run, or with NUMBA_ENABLE_CUDASIM=1 for the
simulator.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import config, cuda, float32

from .fused import logistic, noise_draw

WORKERS = 4096  # warps in flight: the Hogwild staleness, like a mini-batch of this many examples
MAX_Q = 32  # components per lane
MAX_DIM = 32 * MAX_Q  # 1024; a larger --dim runs the PyTorch step
TINY = 1e-6  # skip |dL/dΔ| below this, as fused.py does (see its docstring)

_noise = cuda.jit(device=True)(noise_draw)  # the CPU kernel's noise and loss math, compiled for the GPU
_logistic = cuda.jit(device=True)(logistic)

if config.ENABLE_CUDASIM:
    @cuda.jit(device=True)
    def _warp_sum(v, sh, lane):
        """The simulator has no warp shuffles: the same sum through shared memory, in one order for all lanes."""
        cuda.syncthreads()  # every lane has read the previous sum
        sh[lane] = v
        cuda.syncthreads()
        total = float32(0.0)
        for i in range(32):
            total += sh[i]
        return total
else:
    @cuda.jit(device=True)
    def _warp_sum(v, sh, lane):
        """Butterfly sum over the warp: each step adds the same two values in every pair of lanes, so all
        32 lanes end with the same bits, and the branches that depend on the sum stay uniform."""
        off = 16
        while off > 0:
            v += cuda.shfl_xor_sync(0xFFFFFFFF, v, off)
            off //= 2
        return v


@cuda.jit(fastmath=False)
def _kernel(inp, out, bias, shift, ctx, valid, rows, coef, seed, prob, alias, lr, skip_target_noise, need_loss,
            per, loss):
    """inp, out (V, D) float32, updated in place; bias, shift (V,); ctx, valid (B, S); rows (B, 1+k), column 0
    the targets, the noise ids written here; coef (B, 1+k) receives -lr dL/dΔ for the bias update; loss (B,)."""
    lane = cuda.threadIdx.x
    n, k1 = rows.shape
    dim = inp.shape[1]
    nq = (dim + 31) // 32
    sh = cuda.shared.array(32, float32)
    h = cuda.local.array(MAX_Q, float32)  # h[q]: component lane + 32 q of the hidden vector
    grad = cuda.local.array(MAX_Q, float32)  # the same components of -lr dL/dh
    zero, one = float32(0.0), float32(1.0)
    start = cuda.blockIdx.x * per
    for i in range(start, min(n, start + per)):
        for q in range(nq):
            h[q] = zero
            grad[q] = zero
        used = 0
        for s in range(ctx.shape[1]):
            if valid[i, s]:
                for q in range(nq):
                    d = lane + 32 * q
                    if d < dim:
                        h[q] += inp[ctx[i, s], d]
                used += 1
        if used > 1:
            scale = one / float32(used)
            for q in range(nq):
                h[q] *= scale
        total = zero
        for j in range(k1):
            if j > 0:
                r = _noise(seed, i * k1 + j, prob, alias)
                if lane == 0:
                    rows[i, j] = r
                # word2vec skips a negative that equals the target; true NCE keeps it
                if skip_target_noise and r == rows[i, 0]:
                    continue
            else:
                r = rows[i, 0]
            part = zero
            for q in range(nq):
                d = lane + 32 * q
                if d < dim:
                    part += out[r, d] * h[q]
            delta = _warp_sum(part, sh, lane) + bias[r] + shift[r]  # the same value in every lane
            g, term = _logistic(delta, j == 0, need_loss)
            total += term
            if abs(g) < TINY:
                continue
            c = -lr * g
            for q in range(nq):
                d = lane + 32 * q
                if d < dim:
                    grad[q] += c * out[r, d]  # with the output row before this update
                    cuda.atomic.add(out, (r, d), c * h[q])
            if lane == 0:
                coef[i, j] = c
        if lane == 0:
            loss[i] = total
        # every context word gets the hidden vector's full gradient (word2vec's CBOW rule)
        for s in range(ctx.shape[1]):
            if valid[i, s]:
                for q in range(nq):
                    d = lane + 32 * q
                    if d < dim:
                        cuda.atomic.add(inp, (ctx[i, s], d), grad[q])


def launch(inp, out, bias, shift, ctx, valid, rows, coef, seed, prob, alias, lr, skip_target_noise, need_loss,
           loss, workers: int = WORKERS, stream=0):
    """Run the kernel on device arrays (or numpy arrays in the simulator). rows[:, 0] holds the targets;
    coef must be zero. The biases are not updated here: bias[rows] += coef after it (see train_step)."""
    n = rows.shape[0]
    if inp.shape[1] > MAX_DIM:
        raise ValueError(f"the CUDA step supports dim <= {MAX_DIM}")
    per = max(1, -(-n // max(1, workers)))  # examples a worker
    blocks = max(1, -(-n // per))
    _kernel[blocks, 32, stream](inp, out, bias, shift, ctx, valid, rows, coef, np.uint64(seed), prob, alias,
                                np.float32(lr), bool(skip_target_noise), bool(need_loss), per, loss)


@torch.no_grad()
def train_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
    """Word2Vec.train_step for a SampledHead on CUDA; same arguments and return value (the summed loss,
    a 0-d tensor left on the device)."""
    head = model.head
    device = targets.device
    # one seed per batch, from the run's generator (as fused.train_step does)
    seed = int(torch.randint(2**62, (1,), device=device, generator=generator))
    n = len(targets)
    rows = torch.empty((n, 1 + head.k), dtype=torch.int64, device=device)  # (B, 1+k)
    rows[:, 0] = targets
    coef = torch.zeros((n, 1 + head.k), dtype=torch.float32, device=device)
    loss = torch.empty(n, dtype=torch.float32, device=device)
    if mask is None:  # skip-gram: one context slot, the centre word
        ctx, valid = inputs[:, None], torch.ones((n, 1), dtype=torch.bool, device=device)
    else:
        ctx, valid = inputs, mask
    assert model.input.is_contiguous() and head.weight.is_contiguous()  # updated in place through these views
    arrays = [cuda.as_cuda_array(t.contiguous()) for t in
              (model.input, head.weight, head.bias, head.shift, ctx, valid, rows, coef)]
    stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
    launch(*arrays, seed, cuda.as_cuda_array(head.sampler.prob), cuda.as_cuda_array(head.sampler.alias), lr,
           not head.nce, need_loss, cuda.as_cuda_array(loss), stream=stream)
    head.bias.index_add_(0, rows.view(-1), coef.view(-1))  # (B(1+k),): applied after the launch, as on the CPU
    return loss.sum()


def warm_up(device: torch.device) -> None:
    """Compile the kernel before training is timed: one example on the device."""
    f32 = dict(dtype=torch.float32, device=device)
    emb, vec = torch.zeros((1, 1), **f32), torch.zeros(1, **f32)
    ids = torch.zeros((1, 2), dtype=torch.int64, device=device)
    arrays = [cuda.as_cuda_array(t) for t in (emb, emb.clone(), vec, vec.clone(), ids[:, :1].contiguous(),
                                               torch.ones((1, 1), dtype=torch.bool, device=device), ids,
                                               torch.zeros((1, 2), **f32))]
    launch(*arrays, 1, cuda.as_cuda_array(torch.ones(1, **f32)), cuda.as_cuda_array(ids[0, :1].contiguous()),
           0.0, True, True, cuda.as_cuda_array(vec.clone()))
    cuda.synchronize()


def self_check(tol: float = 1e-4) -> str | None:
    """One step of two small problems (sg-nce, cbow-neg with some empty context slots; dim 40, so lanes are
    partly used) with one worker here and with the CPU kernel on one thread: the same sequential update, so
    they must agree to float rounding. None if they do, else what differed. Why at run time: the kernel is
    tested in numba's simulator, but a GPU, driver or numba version it was never run on could still
    compile it wrongly, and a wrong kernel would train silently worse vectors instead of failing."""
    from . import fused
    from .sampling import AliasSampler

    rng = np.random.default_rng(0)
    v, dim, k, n, lr = 40, 40, 3, 64, np.float32(0.05)
    sampler = AliasSampler((1000 / np.arange(1, v + 1)).astype(np.int64) + 1, 0.75)
    prob, alias = sampler.prob.numpy(), sampler.alias.numpy()
    for arch, nce in (("sg", True), ("cbow", False)):
        slots = 1 if arch == "sg" else 6
        ctx = rng.integers(0, v, (n, slots))
        valid = np.ones((n, slots), dtype=np.bool_) if arch == "sg" else rng.random((n, slots)) < 0.6
        valid[:, 0] = True
        rows = np.zeros((n, 1 + k), dtype=np.int64)
        rows[:, 0] = rng.integers(0, v, n)
        start = [rng.normal(0, s, shape).astype(np.float32) for s, shape in ((0.5, (v, dim)), (0.3, (v, dim)), (0.1, v))]
        shift = (rng.normal(0, 1, v) if nce else np.zeros(v)).astype(np.float32)
        want = [a.copy() for a in start] + [rows.copy(), np.zeros(n, dtype=np.float32)]
        fused.step(*want[:3], shift, ctx, valid, want[3], 11, prob, alias, lr, not nce, True, want[4], threads=1)
        dev = [cuda.to_device(a) for a in (*start, shift, ctx, valid, rows, np.zeros(rows.shape, np.float32),
                                           prob, alias, np.zeros(n, dtype=np.float32))]
        launch(*dev[:8], 11, dev[8], dev[9], lr, not nce, True, dev[10], workers=1)
        cuda.synchronize()
        got = [dev[i].copy_to_host() for i in (0, 1, 2, 6, 10)]
        np.add.at(got[2], got[3].reshape(-1), dev[7].copy_to_host().reshape(-1))  # the biases, as train_step does
        if not (got[3] == want[3]).all():
            return f"self-check: the CUDA kernel drew other noise words than the CPU kernel ({arch})"
        for name, g, w in zip(("input rows", "output rows", "biases", "losses"), got[:3] + got[4:], want[:3] + want[4:]):
            err = float(np.max(np.abs(g - w) / (1 + np.abs(w))))
            if not err <= tol:  # also catches NaN
                return f"self-check: the CUDA kernel's {name} differ from the CPU kernel's by {err:.1e} ({arch})"
    return None
