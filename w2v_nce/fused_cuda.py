"""The fused GPU training step: fused.py's per-example loops, one per family of heads, as CUDA kernels.

Why not the PyTorch step with a large batch: a GPU needs hundreds of thousands of examples per step to
be busy, and summed mini-batch gradients at that size overshoot. A frequent word repeats thousands of
times in one batch, and all its gradients are taken at the same stale parameters. Skip-gram at batch
65,536 or 262,144 diverged within 30 steps; capping each row's step kept it finite but lost quality
(BENCHMARKS.md section 3).

How: Hogwild, as on the CPU, with many more workers. A worker is one warp (32 threads, one block). It
takes a contiguous share of the launch's examples and runs fused.py's loop over it: each lane holds every
32nd component of the hidden vector and of its gradient, and a dot product is a warp sum. The updates are
atomic adds, so no update is lost; so are the biases' (`bias_now`), where the CPU sums them over its 4,096-example
batch: summed over a launch of a million examples, sg-nce lost 0.3 of WS353 on an H200 (BENCHMARKS.md section 6).
How stale a read can be is set by the number of workers in flight, WORKERS, and not by the launch size.
So a launch can hold a million examples, which amortises the launch and the Python loop, while the
staleness stays that of a 4,096-example mini-batch. At that batch size the PyTorch step matched or beat the
sequential CPU step's scores (BENCHMARKS.md sections 1, 3 and 6).

The candidates, the noise draws and the loss terms are fused.py's functions compiled for the GPU, so with one
worker a kernel is the CPU kernel's sequential update exactly, up to float rounding. tests/test_fused_cuda.py
checks it in numba's CUDA simulator, with one worker against the float64 reference and with several workers
for the Hogwild path; `self_check` checks it on the GPU before the first step.

This module imports numba.cuda, so import it only for a CUDA run, or with NUMBA_ENABLE_CUDASIM=1 for the
simulator.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# numba-cuda 0.30.4, the newest release, registers an overload of np.row_stack the first time it compiles a
# kernel, and numpy 2.5 removed that alias of np.vstack: on the H200 image (numpy 2.5.2) every compile failed with
# "module 'numpy' has no attribute 'row_stack'", so training fell back to the PyTorch step. Restore the alias
# where numpy lacks it; it names the same function numpy 2.0-2.4 gave under it.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import config, cuda, float32, int32  # noqa: E402

from . import fused
from .fused import TINY, candidate_function, count, logistic, noise_draw, tables
from .heads import LOGISTIC

WORKERS = 4096  # warps in flight: the Hogwild staleness, like a mini-batch of this many examples
# hs: every example's path starts at the root, so the root's row is read by every warp in flight before their
# updates land: a summed batch of that many gradients. The PyTorch step diverged on cbow-hs at 1,024 and trained
# at 256 (backends.largest_summed_batch); on the GPU, unmeasured yet, hs keeps that staleness.
TREE_WORKERS = 256
MAX_Q = 32  # components per lane
MAX_DIM = 32 * MAX_Q  # 1024; a larger --dim runs the PyTorch step
MAX_CANDIDATES = 256  # the softmax family keeps every score of an example: k + 1 <= this on the GPU

_noise = cuda.jit(device=True)(noise_draw)  # the CPU kernels' math, compiled for the GPU
_count = cuda.jit(device=True)(count)
_logistic = cuda.jit(device=True)(logistic)
_candidate = cuda.jit(device=True)(candidate_function(_noise))

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


@cuda.jit(device=True)
def _hidden(h, grad, inp, ctx, valid, i, lane, nq):
    """This lane's components of h = the mean of example i's valid context rows; grad = 0."""
    dim = inp.shape[1]
    for q in range(nq):
        h[q] = float32(0.0)
        grad[q] = float32(0.0)
    used = 0
    for s in range(ctx.shape[1]):
        if valid[i, s]:
            for q in range(nq):
                d = lane + 32 * q
                if d < dim:
                    h[q] += inp[ctx[i, s], d]
            used += 1
    if used > 1:
        scale = float32(1.0) / float32(used)
        for q in range(nq):
            h[q] *= scale


@cuda.jit(device=True)
def _score(out, r, h, sh, lane, nq, bias):
    """<out_r, h> + b_r, the same value in every lane. Lane 0 alone reads the bias and adds it into the warp sum:
    it wrote the bias's last change itself (an atomic add), which another lane's read need not see yet."""
    part = bias[r] if lane == 0 else float32(0.0)
    for q in range(nq):
        d = lane + 32 * q
        if d < out.shape[1]:
            part += out[r, d] * h[q]
    return _warp_sum(part, sh, lane)


@cuda.jit(device=True)
def _update(out, r, h, grad, c, lane, nq):
    for q in range(nq):
        d = lane + 32 * q
        if d < out.shape[1]:
            grad[q] += c * out[r, d]  # with the output row before this update
            cuda.atomic.add(out, (r, d), c * h[q])


@cuda.jit(device=True)
def _to_inputs(inp, ctx, valid, i, grad, lane, nq):
    """Every context word gets the hidden vector's full gradient (word2vec's CBOW rule)."""
    for s in range(ctx.shape[1]):
        if valid[i, s]:
            for q in range(nq):
                d = lane + 32 * q
                if d < inp.shape[1]:
                    cuda.atomic.add(inp, (ctx[i, s], d), grad[q])


@cuda.jit(fastmath=False)
def _logistic_kernel(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, per, seed,
                     source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead):
    """fused._logistic_step for the examples [block·per, (block+1)·per), one warp. (`ahead`, the CPU kernels' read
    ahead, is unused: the warps in flight hide a row's fetch.)"""
    lane = cuda.threadIdx.x
    width = rows.shape[1]
    nq = (inp.shape[1] + 31) // 32
    sh = cuda.shared.array(32, float32)
    h = cuda.local.array(MAX_Q, float32)  # h[q]: component lane + 32 q of the hidden vector
    grad = cuda.local.array(MAX_Q, float32)  # the same components of -lr dL/dh
    start = cuda.blockIdx.x * per
    for i in range(start, min(targets.shape[0], start + per)):
        _hidden(h, grad, inp, ctx, valid, i, lane, nq)
        target, total = targets[i], float32(0.0)
        for j in range(_count(target, source, width, offsets)):
            r, positive, s, used = _candidate(i, j, width, target, source, seed, shift, prob, alias, drop_hits,
                                              offsets, points, codes, share)
            if lane == 0:
                rows[i, j] = r
            if not used:
                continue
            g, term = _logistic(_score(out, r, h, sh, lane, nq, bias) + s, positive, need_loss)
            total += term
            if abs(g) < TINY:
                continue
            c = -lr * g
            _update(out, r, h, grad, c, lane, nq)
            if lane == 0:
                coef[i, j] = c
                if learn_bias and bias_now:
                    cuda.atomic.add(bias, r, c)
        if lane == 0:
            loss[i] = total
        _to_inputs(inp, ctx, valid, i, grad, lane, nq)


@cuda.jit(fastmath=False)
def _softmax_kernel(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, per, seed,
                    source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead):
    """fused._softmax_step for the examples [block·per, (block+1)·per), one warp."""
    lane = cuda.threadIdx.x
    width = rows.shape[1]
    nq = (inp.shape[1] + 31) // 32
    sh = cuda.shared.array(32, float32)
    deltas = cuda.shared.array(MAX_CANDIDATES, float32)  # the example's scores, written by lane 0
    kept = cuda.shared.array(MAX_CANDIDATES, int32)
    h = cuda.local.array(MAX_Q, float32)
    grad = cuda.local.array(MAX_Q, float32)
    start = cuda.blockIdx.x * per
    for i in range(start, min(targets.shape[0], start + per)):
        _hidden(h, grad, inp, ctx, valid, i, lane, nq)
        top = float32(-math.inf)
        for j in range(width):  # every score first: each gradient needs the softmax of all of them
            r, positive, s, used = _candidate(i, j, width, targets[i], source, seed, shift, prob, alias, drop_hits,
                                              offsets, points, codes, share)
            delta = _score(out, r, h, sh, lane, nq, bias) + s  # every lane takes part in the warp sum
            if lane == 0:
                rows[i, j], kept[j], deltas[j] = r, used, delta
            if used:
                top = max(top, delta)
        cuda.syncthreads()  # lane 0's writes are visible to the warp
        z = float32(0.0)
        for j in range(width):
            if kept[j]:
                z += math.exp(deltas[j] - top)
        term = top + math.log(z) - deltas[0]
        if lane == 0:
            loss[i] = term if need_loss else float32(0.0) * term
        for j in range(width):
            if not kept[j]:
                continue
            g = math.exp(deltas[j] - top) / z - (float32(1.0) if j == 0 else float32(0.0))
            if abs(g) < TINY:
                continue
            c = -lr * g
            _update(out, rows[i, j], h, grad, c, lane, nq)
            if lane == 0:
                coef[i, j] = c
                if learn_bias and bias_now:
                    cuda.atomic.add(bias, rows[i, j], c)
        cuda.syncthreads()  # every lane has read this example's scores before the next one's are written
        _to_inputs(inp, ctx, valid, i, grad, lane, nq)


def launch(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab, seed,
           workers: int = WORKERS, stream=0):
    """Run a family's kernel on device arrays (or numpy arrays in the simulator); `tab` is fused.Tables of
    device arrays. rows and coef must be zero. The biases are updated in the kernel where tab.bias_now, else
    not at all: then bias[rows] += coef after it."""
    n = targets.shape[0]
    if inp.shape[1] > MAX_DIM:
        raise ValueError(f"the CUDA step supports dim <= {MAX_DIM}")
    per = max(1, -(-n // max(1, workers)))  # examples a worker
    blocks = max(1, -(-n // per))
    kernel = _logistic_kernel if family == LOGISTIC else _softmax_kernel
    kernel[blocks, 32, stream](inp, out, bias, ctx, valid, targets, rows, coef, loss, np.float32(lr),
                               bool(need_loss), per, np.uint64(seed), *tab)


@torch.no_grad()
def train_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True,
               share: int = 1):
    """fused.train_step on CUDA; same arguments and return value (the summed loss, a 0-d tensor left on the
    device)."""
    head = model.head
    device = targets.device
    family, tab, width = tables(head, to=cuda.as_cuda_array)
    # a launch is too large a batch to sum the biases over (module docstring)
    tab = tab._replace(bias_now=True, share=share)
    # one seed per batch, from the run's generator (as fused.train_step does)
    seed = int(torch.randint(2**62, (1,), device=device, generator=generator))
    n = len(targets)
    rows = torch.zeros((n, width), dtype=torch.int64, device=device)  # (B, C)
    coef = torch.zeros((n, width), dtype=torch.float32, device=device)
    loss = torch.empty(n, dtype=torch.float32, device=device)
    if mask is None:  # skip-gram: one context slot, the centre word
        ctx, valid = inputs[:, None], torch.ones((n, 1), dtype=torch.bool, device=device)
    else:
        ctx, valid = inputs, mask
    assert model.input.is_contiguous() and head.weight.is_contiguous()  # updated in place through these views
    arrays = [cuda.as_cuda_array(t.contiguous()) for t in
              (model.input, head.weight, head.bias, ctx, valid, targets, rows, coef, loss)]
    stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
    workers = TREE_WORKERS if tab.source == fused.TREE else WORKERS
    launch(family, *arrays, lr, need_loss, tab, seed, workers=workers, stream=stream)
    return loss.sum()


def warm_up(device: torch.device) -> None:
    """Compile both kernels before training is timed: a problem of one example on the device."""
    from .sampling import AliasSampler
    from .heads import HSHead, SampledHead
    from .model import Word2Vec

    sampler = AliasSampler(np.array([2, 1]), 0.75, device)
    for head in (SampledHead(2, 1, sampler, 1, "neg"), SampledHead(2, 1, sampler, 1, "infonce"),
                 HSHead(np.array([2, 1]), 1)):
        model = Word2Vec(2, 1, "sg", head).to(device)
        ids = torch.zeros(1, dtype=torch.int64, device=device)
        train_step(model, ids, ids, 0.0, None, torch.Generator(device=device))
    cuda.synchronize()


def self_check(tol: float = 1e-4, n: int = 64) -> str | None:
    """One step of small problems of each family and candidate source (sg-nce, cbow-neg with some empty context
    slots, sg-hs, cbow-sampled-softmax; dim 40, so lanes are partly used) with one worker here and with the CPU
    kernel on one thread: the same sequential update, so they must agree to float rounding. None if they do,
    else what differed. Why at run time: the kernels are tested in numba's simulator, but a GPU, driver or numba
    version they were never run on could still compile them wrongly, and a wrong kernel would train silently
    worse vectors instead of failing."""
    from .heads import make_head
    from .sampling import AliasSampler

    rng = np.random.default_rng(0)
    v, dim, k, lr = 40, 40, 3, np.float32(0.05)
    counts = (1000 / np.arange(1, v + 1)).astype(np.int64) + 1
    sampler = AliasSampler(counts, 0.75)
    for arch, loss_name in (("sg", "nce"), ("cbow", "neg"), ("sg", "hs"), ("cbow", "sampled-softmax")):
        head = make_head(loss_name, counts, dim, sampler, k)
        family, tab, width = fused.tables(head)
        tab = tab._replace(bias_now=True)  # as train_step runs it; the CPU kernel on one thread does the same
        slots = 1 if arch == "sg" else 6
        ctx = rng.integers(0, v, (n, slots))
        valid = np.ones((n, slots), dtype=np.bool_) if arch == "sg" else rng.random((n, slots)) < 0.6
        valid[:, 0] = True
        targets = rng.integers(0, v, n)
        rows_n = len(head.weight)
        start = [rng.normal(0, s, shape).astype(np.float32) for s, shape in ((0.5, (v, dim)), (0.3, (rows_n, dim)),
                                                                             (0.1, rows_n))]
        want = [a.copy() for a in start] + [np.zeros((n, width), np.int64), np.zeros((n, width), np.float32),
                                            np.zeros(n, np.float32)]
        fused.step(family, *want[:3], ctx, valid, targets, *want[3:], lr, True, tab, 11, threads=1)
        dev = [cuda.to_device(a) for a in (*start, ctx, valid, targets, np.zeros((n, width), np.int64),
                                           np.zeros((n, width), np.float32), np.zeros(n, np.float32))]
        dtab = tab._replace(**{f: cuda.to_device(x) for f, x in tab._asdict().items() if isinstance(x, np.ndarray)})
        launch(family, *dev, lr, True, dtab, 11, workers=1)
        cuda.synchronize()
        got = [dev[i].copy_to_host() for i in (0, 1, 2, 6, 7, 8)]
        if not (got[3] == want[3]).all():
            return f"self-check: the CUDA kernel chose other candidates than the CPU kernel ({arch}-{loss_name})"
        for name, g, w in zip(("input rows", "output rows", "biases", "losses"), got[:3] + got[5:],
                              want[:3] + want[5:]):
            err = float(np.max(np.abs(g - w) / (1 + np.abs(w))))
            if not err <= tol:  # also catches NaN
                return (f"self-check: the CUDA kernel's {name} differ from the CPU kernel's by {err:.1e} "
                        f"({arch}-{loss_name})")
    return None
