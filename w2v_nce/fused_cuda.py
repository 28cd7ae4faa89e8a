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
How stale a read can be is set by the number of workers in flight, and not by the launch size: a block is one
warp, and an SM holds at most 32 blocks, so at most 4,224 warps are in flight on an H200 (132 SMs) however many
workers a launch has (WORKERS: more than fit only shorten each one's share, so that the launch's last wave leaves
fewer SMs idle). So a launch can hold a million examples, which amortises the launch and the Python loop, while the
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

import functools
import math

import numpy as np
import torch

# numba-cuda 0.30.4, the newest release, registers an overload of np.row_stack the first time it compiles a
# kernel, and numpy 2.5 removed that alias of np.vstack: on the H200 image (numpy 2.5.2) every compile failed with
# "module 'numpy' has no attribute 'row_stack'", so training fell back to the PyTorch step. Restore the alias
# where numpy lacks it; it names the same function numpy 2.0-2.4 gave under it.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import config, cuda, float32, float64, int32, int64  # noqa: E402

from . import fused
from .fused import TINY, candidate_function, count, logistic, noise_draw, tables
from .heads import LOGISTIC

WORKERS = 16384  # warps a launch; at most 32 an SM run at once (the module docstring): 1.13x 4,096 (BENCHMARKS 6)
# hs: every example's path starts at the root, so the root's row is read by every warp in flight before their
# updates land: a summed batch of that many gradients. The PyTorch step diverged on cbow-hs at 1,024 and trained
# at 256 (backends.largest_summed_batch); on the GPU, unmeasured yet, hs keeps that staleness.
TREE_WORKERS = 256
WARPS = 1  # warps a block (kernels()): 1 keeps the warps in flight at 32 an SM
# registers a thread: at 88, the compiler's choice for dim 100, an SM held 20 warps (ncu: latency-bound, 0.93
# eligible warps a scheduler); 64 lets it hold its 32 blocks. None: the compiler's choice
MAX_REGISTERS = 64
MAX_DIM = 1024  # 32 components a lane at most; a larger --dim runs the PyTorch step
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

    @cuda.jit(device=True)
    def _sync_warp():
        cuda.syncthreads()  # one warp a block in the simulator (_blocks)
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
    def _sync_warp():
        cuda.syncwarp(0xFFFFFFFF)


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
def _load(out, r, o, lane, nq):
    """This lane's components of output row r into o (0 past the dimension)."""
    for q in range(nq):
        d = lane + 32 * q
        o[q] = out[r, d] if d < out.shape[1] else float32(0.0)


@cuda.jit(device=True)
def _score(o, h, sh, lane, nq, b):
    """<o, h> + b, the same value in every lane: the lanes' partial sums, with b added by lane 0 alone (the lane
    that read the bias: it wrote the bias's last change itself, an atomic add, which another lane's read need not
    see yet)."""
    part = b if lane == 0 else float32(0.0)
    for q in range(nq):
        part += o[q] * h[q]
    return _warp_sum(part, sh, lane)


@cuda.jit(device=True)
def _update(out, r, o, h, grad, c, lane, nq):
    """grad += c o, with o the row as it was read for the score; out_r += c h."""
    for q in range(nq):
        d = lane + 32 * q
        if d < out.shape[1]:
            grad[q] += c * o[q]
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


@cuda.jit(device=True)
def _draw(first, j, cnt, width, target, source, seed, shift, prob, alias, drop_hits, offsets, points, codes,
          picked, shifts, flags, at):
    """Candidate j of the example, if j < cnt, into picked[at] (its row), shifts[at] and flags[at] (1: label 1,
    2: a term of the loss). The lanes draw 32 candidates at once: drawn one after the other by the whole warp,
    each candidate's hash and its alias table reads came before its row could be read."""
    if j < cnt:
        r, positive, s, used = _candidate(first, j, width, target, source, seed, shift, prob, alias, drop_hits,
                                          offsets, points, codes)
        picked[at], shifts[at] = r, s
        flags[at] = (1 if positive else 0) + (2 if used else 0)


@functools.lru_cache(maxsize=None)
def kernels(nq: int, warps: int, registers: int | None = None):
    """(the logistic family's kernel, the softmax family's) for dim <= 32·nq, in blocks of `warps` warps, with at
    most `registers` registers a thread.

    nq, the components a lane holds, is a constant of the compiled code: every loop over them unrolls, and h and
    grad stay in registers. Read from the shape at run time, they lived in local memory, a load and a store through
    L1 for every component of every candidate. A warp is a worker whatever the block size: blocks of several warps
    only let an SM hold more of them (it holds at most 32 blocks)."""
    jit = cuda.jit(fastmath=False, **({} if config.ENABLE_CUDASIM or not registers else
                                      {"max_registers": registers}))
    return _logistic_family(jit, nq, warps), _softmax_family(jit, nq, warps)


def _logistic_family(jit, nq: int, warps: int):
    """fused._logistic_step's kernel (kernels())."""


    @jit
    def logistic_kernel(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, per, seeds,
                        source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share,
                        ahead):
        """fused._logistic_step for the examples [worker·per, (worker+1)·per), one warp. (`ahead`, the CPU
        kernels' read ahead, is unused: the warps in flight hide a row's fetch.)"""
        lane, warp = cuda.threadIdx.x % 32, cuda.threadIdx.x // 32
        width = rows.shape[1]
        record = rows.shape[0] == targets.shape[0]  # rows and coef are the self-check's: training passes (1, C)
        sh = cuda.shared.array((warps, 32), float32)[warp]
        picked = cuda.shared.array((warps, 32), int64)[warp]  # a round of 32 candidates (_draw)
        shifts = cuda.shared.array((warps, 32), float32)[warp]
        flags = cuda.shared.array((warps, 32), int32)[warp]
        h = cuda.local.array(nq, float32)  # h[q]: component lane + 32 q of the hidden vector
        grad = cuda.local.array(nq, float32)  # the same components of -lr dL/dh
        o = cuda.local.array(nq, float32)  # the same components of the candidate's output row, read once
        o2 = cuda.local.array(nq, float32)  # and of the next candidate's, read while this one is applied
        seed = np.uint64(seeds[0])
        start = (cuda.blockIdx.x * warps + warp) * per
        for i in range(start, min(targets.shape[0], start + per)):
            _hidden(h, grad, inp, ctx, valid, i, lane, nq)
            target, total, first = targets[i], float32(0.0), i - i % share
            prod = float64(1.0)  # the product of the terms' q (fused.logistic)
            cnt = _count(target, source, width, offsets)
            ready = False  # o holds candidate j's row
            for j in range(cnt):
                m = j % 32
                if m == 0:
                    _sync_warp()  # the last round is read
                    _draw(first, j + lane, cnt, width, target, source, seed, shift, prob, alias, drop_hits,
                          offsets, points, codes, picked, shifts, flags, lane)
                    if record and j + lane < cnt:
                        rows[i, j + lane] = picked[lane]
                    _sync_warp()
                    ready = False
                r, f = picked[m], flags[m]
                if f < 2:  # not a term of the loss (a noise draw of the target, dropped)
                    ready = False
                    continue
                if not ready:
                    _load(out, r, o, lane, nq)
                b = bias[r] if lane == 0 else float32(0.0)
                delta = _score(o, h, sh, lane, nq, b) + shifts[m]
                # the next candidate's row is read now, so that its fetch overlaps this one's update
                ready = m + 1 < 32 and j + 1 < cnt
                if ready:
                    ready = flags[m + 1] >= 2
                nxt = picked[m + 1] if ready else r
                if ready:
                    _load(out, nxt, o2, lane, nq)
                g, hinge, q = _logistic(delta, f % 2 == 1, need_loss)
                total += hinge
                prod *= q
                if abs(g) >= TINY:
                    c = -lr * g
                    _update(out, r, o, h, grad, c, lane, nq)
                    if lane == 0:
                        if record:
                            coef[i, j] = c
                        if learn_bias and bias_now:
                            cuda.atomic.add(bias, r, c)
                    if ready and nxt == r:  # the same row twice: read it again, with this change
                        _load(out, nxt, o2, lane, nq)
                if ready:
                    for q in range(nq):
                        o[q] = o2[q]
            if lane == 0:
                loss[i] = total - float32(math.log(prod))
            _to_inputs(inp, ctx, valid, i, grad, lane, nq)

    return logistic_kernel


def _softmax_family(jit, nq: int, warps: int):
    """fused._softmax_step's kernel (kernels())."""

    @jit
    def softmax_kernel(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, per, seeds,
                       source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share,
                       ahead):
        """fused._softmax_step for the examples [worker·per, (worker+1)·per), one warp."""
        lane, warp = cuda.threadIdx.x % 32, cuda.threadIdx.x // 32
        width = rows.shape[1]
        record = rows.shape[0] == targets.shape[0]
        sh = cuda.shared.array((warps, 32), float32)[warp]
        deltas = cuda.shared.array((warps, MAX_CANDIDATES), float32)[warp]  # the example's scores, from lane 0
        picked = cuda.shared.array((warps, MAX_CANDIDATES), int64)[warp]  # the candidates (_draw)
        shifts = cuda.shared.array((warps, MAX_CANDIDATES), float32)[warp]
        flags = cuda.shared.array((warps, MAX_CANDIDATES), int32)[warp]
        h = cuda.local.array(nq, float32)
        grad = cuda.local.array(nq, float32)
        o = cuda.local.array(nq, float32)
        seed = np.uint64(seeds[0])
        start = (cuda.blockIdx.x * warps + warp) * per
        for i in range(start, min(targets.shape[0], start + per)):
            _hidden(h, grad, inp, ctx, valid, i, lane, nq)
            top, first = float32(-math.inf), i - i % share
            for base in range(0, width, 32):  # every candidate, 32 at a time (_draw)
                _draw(first, base + lane, width, width, targets[i], source, seed, shift, prob, alias, drop_hits,
                      offsets, points, codes, picked, shifts, flags, base + lane)
                if record and base + lane < width:
                    rows[i, base + lane] = picked[base + lane]
            _sync_warp()
            for j in range(width):  # every score first: each gradient needs the softmax of all of them
                r = picked[j]
                _load(out, r, o, lane, nq)
                b = bias[r] if lane == 0 else float32(0.0)
                delta = _score(o, h, sh, lane, nq, b) + shifts[j]  # every lane takes part in the warp sum
                if lane == 0:
                    deltas[j] = delta
                if flags[j] >= 2:
                    top = max(top, delta)
            _sync_warp()  # lane 0's writes are visible to the warp
            z = float32(0.0)
            for j in range(width):
                if flags[j] >= 2:
                    z += math.exp(deltas[j] - top)
            term = top + math.log(z) - deltas[0]
            if lane == 0:
                loss[i] = term if need_loss else float32(0.0) * term
            for j in range(width):
                if flags[j] < 2:
                    continue
                g = math.exp(deltas[j] - top) / z - (float32(1.0) if j == 0 else float32(0.0))
                if abs(g) < TINY:
                    continue
                c = -lr * g
                _load(out, picked[j], o, lane, nq)  # as the CPU kernel, with the row as it is now
                _update(out, picked[j], o, h, grad, c, lane, nq)
                if lane == 0:
                    if record:
                        coef[i, j] = c
                    if learn_bias and bias_now:
                        cuda.atomic.add(bias, picked[j], c)
            _sync_warp()  # every lane has read this example's scores before the next one's are written
            _to_inputs(inp, ctx, valid, i, grad, lane, nq)

    return softmax_kernel


def launch(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab, seed,
           workers: int = WORKERS, stream=0):
    """Run a family's kernel on device arrays (or numpy arrays in the simulator); `tab` is fused.Tables of
    device arrays; `seed` an int or a one-element int64 device array. rows and coef must be zero, and are written
    only where they have a row per example (else (1, C) placeholders). The biases are updated in the kernel where tab.bias_now, else not at all: then
    bias[rows] += coef after it."""
    n = targets.shape[0]
    if inp.shape[1] > MAX_DIM:
        raise ValueError(f"the CUDA step supports dim <= {MAX_DIM}")
    if isinstance(seed, (int, np.integer)):
        seed = cuda.to_device(np.array([seed], dtype=np.int64))
    per = max(1, -(-n // max(1, workers)))  # examples a worker
    warps = 1 if config.ENABLE_CUDASIM else WARPS  # the simulator's warp sum is a barrier of the whole block
    blocks = max(1, -(-n // (per * warps)))
    logistic_kernel, softmax_kernel = kernels(-(-inp.shape[1] // 32), warps, MAX_REGISTERS)
    kernel = logistic_kernel if family == LOGISTIC else softmax_kernel
    kernel[blocks, 32 * warps, stream](inp, out, bias, ctx, valid, targets, rows, coef, loss, np.float32(lr),
                                       bool(need_loss), per, seed, *tab)


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
    # one seed per batch, from the run's generator (as fused.train_step does), left on the device: read on the host,
    # it would wait for the previous launch, and the host could not queue the next work while the GPU trains
    seed = torch.randint(2**62, (1,), device=device, generator=generator)
    n = len(targets)
    # the kernel records each example's candidates and coefficients only for the self-check (launch)
    rows = torch.zeros((1, width), dtype=torch.int64, device=device)  # (1, C)
    coef = torch.zeros((1, width), dtype=torch.float32, device=device)
    loss = torch.empty(n, dtype=torch.float32, device=device)
    if mask is None:  # skip-gram: one context slot, the centre word
        ctx, valid = inputs[:, None], torch.ones((n, 1), dtype=torch.bool, device=device)
    else:
        ctx, valid = inputs, mask
    assert model.input.is_contiguous() and head.weight.is_contiguous()  # updated in place through these views
    arrays = [cuda.as_cuda_array(t.contiguous()) for t in
              (model.input, head.weight, head.bias, ctx, valid, targets, rows, coef, loss)]
    seed = cuda.as_cuda_array(seed)
    stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
    workers = TREE_WORKERS if tab.source == fused.TREE else WORKERS
    launch(family, *arrays, lr, need_loss, tab, seed, workers=workers, stream=stream)
    return loss.sum()


def warm_up(device: torch.device, dim: int = 1, losses=("neg", "infonce", "hs")) -> None:
    """Compile the kernels of these heads for this dim (a kernel a family and 32 components of dim) before training
    is timed: a problem of one example on the device. Compiled in the first launch instead, a run's first second
    was the compiler's (sg-neg measured 26M words/s in 5 epochs for 40M)."""
    from .sampling import AliasSampler
    from .heads import HSHead, SampledHead
    from .model import Word2Vec

    sampler = AliasSampler(np.array([2, 1]), 0.75, device)
    for loss in losses:
        head = HSHead(np.array([2, 1]), dim) if loss == "hs" else SampledHead(2, dim, sampler, 1, loss)
        model = Word2Vec(2, dim, "sg", head).to(device)
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
