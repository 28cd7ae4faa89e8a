"""update.py's per-example loops as CUDA kernels, one per family of heads (kernels()): a worker is one warp, each lane
holding every 32nd component of the hidden vector and of its gradient, a dot product a warp sum, every update an
atomic add. With subwords a word's input rows are its own and its n-grams' (update.Params), and skip-gram's centre
carries its hidden vector over its examples, as inputs.py does on the CPU. The candidates, the noise draws and the loss terms are kernel.py's functions compiled for the GPU.
cuda.py launches them.

This module imports numba.cuda, so import it only for a CUDA run, or with NUMBA_ENABLE_CUDASIM=1 for the
simulator.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# numba-cuda 0.30.4, the newest release, registers an overload of np.row_stack the first time it compiles a
# kernel, and numpy 2.5 removed that alias of np.vstack: on the H200 image (numpy 2.5.2) every compile failed with
# "module 'numpy' has no attribute 'row_stack'", so training fell back to the PyTorch step. Restore the alias
# where numpy lacks it; it names the same function numpy 2.0-2.4 gave under it.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import config, cuda, float32, float64, int32, int64  # noqa: E402

from .kernel import TINY, candidate_function, count, draw_function, logistic, split_entry

MAX_CANDIDATES = 256  # the softmax family keeps every score of an example: k + 1 <= this on the GPU

_noise = cuda.jit(device=True)(draw_function(cuda.jit(device=True)(split_entry)))  # the CPU kernels' math, for the GPU
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
def _hidden(h, grad, inp, offsets, subs, ctx, valid, i, lane, nq):
    """This lane's components of h = the mean of example i's valid context words' input rows (one a word, or with
    subwords each word's own and its n-grams': offsets, subs as update.Params's sub_offsets, sub_rows); grad = 0."""
    for q in range(nq):
        h[q] = float32(0.0)
        grad[q] = float32(0.0)
    used = 0
    for s in range(ctx.shape[1]):
        if valid[i, s]:
            used += _add_rows(h, inp, offsets, subs, ctx[i, s], lane, nq)
    if used > 1:
        scale = float32(1.0) / float32(used)
        for q in range(nq):
            h[q] *= scale


@cuda.jit(device=True)
def _rows_of(offsets, w):
    """[a, b): word w's input rows in subs, or (w, w + 1) where a word's row is its own (offsets of one element)."""
    if offsets.shape[0] > 1:
        return offsets[w], offsets[w + 1]
    return w, w + 1


@cuda.jit(device=True)
def _add_rows(h, inp, offsets, subs, w, lane, nq):
    """h += each input row of word w (this lane's components); returns how many rows."""
    a, b = _rows_of(offsets, w)
    for p in range(a, b):
        r = subs[p] if offsets.shape[0] > 1 else w
        for q in range(nq):
            d = lane + 32 * q
            if d < inp.shape[1]:
                h[q] += inp[r, d]
    return b - a


@cuda.jit(device=True)
def _add_to_rows(inp, offsets, subs, w, x, lane, nq):
    """Each input row of word w += x (this lane's components; atomic adds)."""
    a, b = _rows_of(offsets, w)
    for p in range(a, b):
        r = subs[p] if offsets.shape[0] > 1 else w
        for q in range(nq):
            d = lane + 32 * q
            if d < inp.shape[1]:
                cuda.atomic.add(inp, (r, d), x[q])


@cuda.jit(device=True)
def _carry(h, grad, acc, inp, offsets, subs, w, word, gain, lane, nq):
    """inputs.carry_input for a warp: skip-gram with subwords, a centre's examples in a row share their input word w.
    grad = 0; a new word: the waiting gradient (acc) given to the last word's rows, h made from w's rows, acc = 0.
    Returns (the carried word, its gain: the sum of each row's count squared over the count of rows)."""
    for q in range(nq):
        grad[q] = float32(0.0)
    if w == word:
        return word, gain
    if word >= 0:
        _add_to_rows(inp, offsets, subs, word, acc, lane, nq)
    a, b = offsets[w], offsets[w + 1]
    for q in range(nq):
        h[q] = float32(0.0)
        acc[q] = float32(0.0)
    _add_rows(h, inp, offsets, subs, w, lane, nq)
    same = 0
    for p in range(a, b):
        for t in range(a, b):
            same += subs[t] == subs[p]
    scale = float32(1.0) / float32(b - a)
    for q in range(nq):
        h[q] *= scale
    return w, float32(same) * scale


@cuda.jit(device=True)
def _carried(h, grad, acc, gain, nq):
    """inputs.carried: the example's gradient waits in acc, and h moves as the carried word's rows would."""
    for q in range(nq):
        acc[q] += grad[q]
        h[q] += gain * grad[q]


@cuda.jit(device=True)
def _input_of(h, grad, acc, inp, offsets, subs, ctx, valid, i, carry, word, gain, lane, nq):
    """Example i's hidden vector in h and grad = 0: carried (_carry) or made (_hidden). Returns (word, gain)."""
    if carry:
        return _carry(h, grad, acc, inp, offsets, subs, ctx[i, 0], word, gain, lane, nq)
    _hidden(h, grad, inp, offsets, subs, ctx, valid, i, lane, nq)
    return word, gain


@cuda.jit(device=True)
def _input_done(h, grad, acc, inp, offsets, subs, ctx, valid, i, carry, gain, lane, nq):
    """After example i: its gradient waits for the carried word's rows (_carried) or goes to its input rows."""
    if carry:
        _carried(h, grad, acc, gain, nq)
    else:
        _to_inputs(inp, offsets, subs, ctx, valid, i, grad, lane, nq)


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
def _to_inputs(inp, offsets, subs, ctx, valid, i, grad, lane, nq):
    """Every input row of example i gets the hidden vector's full gradient (word2vec's CBOW rule; fastText's for
    every n-gram row)."""
    for s in range(ctx.shape[1]):
        if valid[i, s]:
            _add_to_rows(inp, offsets, subs, ctx[i, s], grad, lane, nq)


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
    """update.logistic_range as a kernel (kernels())."""

    @jit
    def logistic_kernel(inp, out, bias, sub_offsets, sub_rows, ctx, valid, targets, rows, coef, loss, lr, need_loss, per, seeds,
                        source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share,
                        ahead):
        """update.logistic_range for the examples [worker·per, (worker+1)·per), one warp. (`ahead`, the CPU
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
        acc = cuda.local.array(nq, float32)  # the gradient waiting for the carried input word's rows (_carry)
        carry, word, gain = sub_offsets.shape[0] > 1 and ctx.shape[1] == 1, int64(-1), float32(1.0)
        seed = np.uint64(seeds[0])
        start = (cuda.blockIdx.x * warps + warp) * per
        for i in range(start, min(targets.shape[0], start + per)):
            word, gain = _input_of(h, grad, acc, inp, sub_offsets, sub_rows, ctx, valid, i, carry, word, gain, lane, nq)
            target, total, first = targets[i], float32(0.0), i - i % share
            prod = float64(1.0)  # the product of the terms' q (kernel.logistic)
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
            _input_done(h, grad, acc, inp, sub_offsets, sub_rows, ctx, valid, i, carry, gain, lane, nq)
        if carry and word >= 0:
            _add_to_rows(inp, sub_offsets, sub_rows, word, acc, lane, nq)

    return logistic_kernel


def _softmax_family(jit, nq: int, warps: int):
    """update.softmax_range as a kernel (kernels())."""

    @jit
    def softmax_kernel(inp, out, bias, sub_offsets, sub_rows, ctx, valid, targets, rows, coef, loss, lr, need_loss, per, seeds,
                       source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share,
                       ahead):
        """update.softmax_range for the examples [worker·per, (worker+1)·per), one warp."""
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
        acc = cuda.local.array(nq, float32)
        carry, word, gain = sub_offsets.shape[0] > 1 and ctx.shape[1] == 1, int64(-1), float32(1.0)
        seed = np.uint64(seeds[0])
        start = (cuda.blockIdx.x * warps + warp) * per
        for i in range(start, min(targets.shape[0], start + per)):
            word, gain = _input_of(h, grad, acc, inp, sub_offsets, sub_rows, ctx, valid, i, carry, word, gain, lane, nq)
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
            _input_done(h, grad, acc, inp, sub_offsets, sub_rows, ctx, valid, i, carry, gain, lane, nq)
        if carry and word >= 0:
            _add_to_rows(inp, sub_offsets, sub_rows, word, acc, lane, nq)

    return softmax_kernel
