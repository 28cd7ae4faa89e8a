"""The fused CPU training step: word2vec's per-example update loop, compiled with numba, for every head but the
exact softmax. On a GPU, fused_cuda.py runs the same loops as CUDA kernels.

Why: on the CPU the PyTorch step (backends.torch_step) is bound by memory traffic, not arithmetic: each op is a
separate pass over a gathered (B, C, D) copy of the rows (gather, multiply, reduce, scale, scatter), so every row
an example touches is read and written several times (BENCHMARKS.md section 4). These loops read each row once
and write it once, from the embedding matrices themselves.

One loop per family of heads (heads.py), as word2vec.c's hierarchical softmax and negative sampling loops are one:
  h = the context word's input row (sg) or the mean of the context rows (cbow)
  logistic (neg, nce, hs): for each candidate r of the example, in order: Δ = <out_r, h> + b_r + shift,
      c = -lr dL/dΔ; grad += c out_r; then out_r += c h (hs takes every Δ first: the same result, as a path's
      nodes are distinct, and the independent scores overlap in the core)
  softmax (infonce, sampled-softmax): every Δ first, then for each candidate c = -lr (softmax_r - [r is the
      target]); grad += c out_r; out_r += c h
  every context row (cbow) or the centre row (sg) += grad: the full gradient, word2vec's CBOW rule.
Where the candidates come from is the head's (`candidate`): the target and k noise words drawn here (neg, nce,
infonce, sampled-softmax), or the inner nodes on the target's Huffman path (hs).

The per-example math is the heads' (tests/test_fused.py checks it against a float64 reference); the difference
from the PyTorch step is when rows change: here after each example, there after each mini-batch. Two details:
- The biases (word2vec has none) are summed over the batch and applied at its end. The biases of the most
  frequent words share a cache line, and two threads writing it for every example made the step 3x slower.
  On the GPU, whose launches hold a million examples, each change is applied at once instead (`bias_now`):
  summed over a launch, the bias of a frequent word took tens of thousands of steps at one stale value, and
  sg-nce lost 0.3 of WS353 on the H200 (BENCHMARKS.md section 6).
- A coefficient |dL/dΔ| < 1e-6 is skipped: the change it would make, at most lr·1e-6·|h_d| per weight, is at
  the float32 rounding step of the weights. Without any cut, late epochs on the slice slowed down on denormal
  numbers from saturated scores. In trained models fewer than 0.05% of the terms fall below the cut, for NEG
  and NCE alike, so it changes neither the scores nor the work (BENCHMARKS.md sections 1 and 4).

Threads: the batch is split into one contiguous share per thread (a process of torchrun; one process trains by
pieces, each thread taking its own: pieces.py, which runs these same loops), and the threads update the shared
matrices without locks (Hogwild, as word2vec.c and gensim do), so runs with several threads differ in the
last bits. With one thread the result is a function of the inputs: reproducible, and resumable exactly.
One exception to sharing everything at once: in hs every example updates the root and the nodes below it, and
two threads writing those rows for every term kept taking the cache lines from each other, so that 2 threads
trained no faster than one (sg-hs, 20 MB slice: 330k words/s with 1 or 2 threads). So each thread keeps its
changes to the TOP_NODES nodes nearest the root apart, in its own copy of those rows (its own updates count at
once, as in the sequential loop); every SYNC examples and at the end of its share it adds its changes (the copy less
the rows as it took them) to the shared rows and takes them again, the other threads' changes given so far
included (_sync). With one thread there is nothing to give and the copy is the row (2 threads then ran at 433k-457k
words/s with the analogies, WS353 and SimLex of before: BENCHMARKS.md section 1b). A first version read those rows
as the shared row plus the changes held apart and gave them only at the end of the share: two loads for each element
of a score and three for an update, where the copy takes one and two, and the other threads' changes seen up to a
whole share late; the copy given every 1,024 examples is 1.09-1.12x faster, with a lower training loss
(BENCHMARKS.md section 4).

The length of the rows: a kernel given `fixed`, a tuple of dim zeros, is compiled for that dim (numba types a tuple by
its length), and its loops over a row have a constant trip count, which the compiler unrolls and vectorises whole;
with the length read from the array each loop had a vector body, a scalar remainder (100 = 3·32 + 4) and the checks
between them. The kernel alone: sg-hs 1.11-1.21x, sg-infonce 1.39-1.42x, sg-neg 1.11-1.27x, cbow 1.07-1.12x
(BENCHMARKS.md section 4). Each dim is compiled once (numba's cache keeps it); dims below FIXED_FROM, the tests',
share one kernel that reads the length.

Noise: the k noise words of example i are draws i(1+k)+1 .. i(1+k)+k of a counter-based hash (splitmix64)
of one seed per batch, taken from the run's torch generator; so they do not depend on the threads either. With
--shared-noise N (Tables.share), example i takes the draws of example i - i mod N: N consecutive examples share
one draw, so that each noise row is fetched from memory once for them (BENCHMARKS.md section 4). The softmax loop
reads the draw's words from the rows of its first example rather than drawing them again (_draw: sg-infonce 1.11x,
sg-sampled-softmax 1.09-1.16x, the kernel alone); in the logistic loop that was no faster.
"""

from __future__ import annotations

import functools
import math
import weakref
from typing import NamedTuple

import numpy as np
import torch

from .heads import EXACT, LOGISTIC, SAMPLED, HSHead

try:
    import numba
except ImportError:  # the PyTorch step is used instead
    numba = None

if numba is not None:
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _float32_bits(typingctx, bits):
        """The float32 whose bits are the int32 `bits` (numba has no scalar bit cast): exp32's 2^n."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return numba.float32(numba.int32), codegen

    @intrinsic
    def _prefetch(typingctx, array, row, col):
        """Ask the core to fetch the cache line of array[row, col] (2-d) and go on: a load that nothing waits on
        still holds up the retiring of every instruction after it until it arrives, a prefetch does not."""
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.bitcast(cgutils.get_item_pointer(context, builder, signature.args[0], ary, args[1:]),
                                  ir.IntType(8).as_pointer())
            # the intrinsic's name carries the pointer's type: "p0" where LLVM's pointers are opaque (LLVM >= 15)
            name = "llvm.prefetch.p0" if getattr(ptr.type, "is_opaque", False) else "llvm.prefetch.p0i8"
            i32 = ir.IntType(32)
            kind = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, kind, name)
            builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # a read, kept in every cache level, of data
            return context.get_dummy_value()
        return numba.void(array, row, col), codegen

    # 'fast' minus nnan/ninf: the compiler may reorder sums (vectorising the dot products) but must keep
    # NaN and inf, because a non-finite score is how divergence is detected
    _MATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
    _jit = numba.njit(parallel=True, fastmath=_MATH, cache=True, nogil=True)
    # one thread's loop: called once a thread by the parallel kernels (inlined in a prange body, numba refuses a
    # function of this many arguments) and by the pieces of the free-running step (pieces.py)
    _serial = numba.njit(fastmath=_MATH, cache=True, nogil=True)
    _inline = numba.njit(inline="always", cache=True)
    prange = numba.prange
else:  # keep the module importable; unsupported() says numba is missing
    def _jit(f):
        return f
    _inline = _serial = _jit
    prange = range

NOISE, TREE = 0, 1  # where an example's candidates come from: noise draws, or the target's Huffman path
TINY = 1e-6  # |dL/dΔ| below this is skipped (see the module docstring)
# the CPU kernels prefetch the output rows of the next example (_touch): 1.01-1.05x 2 ahead (section 4)
AHEAD = 1
TOP_NODES = 256  # hs: the inner nodes nearest the root, whose changes each thread holds apart (module docstring)
SYNC = 1024  # hs with several threads: each gives its changes to those rows and takes the others' every SYNC examples
FIXED_FROM = 50  # rows of this many dims or more get a kernel compiled for their length (the module docstring)


def unsupported(device: torch.device, loss: str, negatives: int = 1, dim: int = 0) -> str | None:
    """None if the fused step can run this head here, else what it needs (a phrase for a message): numba, a head
    other than the exact softmax, and the CPU or a GPU on which the CUDA kernels compile and pass their
    self-check, within the kernels' limits of dim and candidates."""
    if numba is None:
        return "numba (pip install numba)"
    if loss == "softmax":
        return "a sampled or tree head (--loss softmax is a dense product: the PyTorch step runs it)"
    if device.type == "cuda":
        why = cuda_unavailable()
        if why is not None:
            return f"a GPU that numba's CUDA target can use (here: {why})"
        from . import fused_cuda
        if dim > fused_cuda.MAX_DIM:
            return f"--dim {fused_cuda.MAX_DIM} or less on a GPU"
        if SAMPLED.get(loss, (LOGISTIC,))[0] != LOGISTIC and negatives + 1 > fused_cuda.MAX_CANDIDATES:
            return f"--negatives {fused_cuda.MAX_CANDIDATES - 1} or less for --loss {loss} on a GPU"
        return None
    return None if device.type == "cpu" else "the CPU or a CUDA GPU"


@functools.lru_cache(maxsize=None)
def cuda_unavailable() -> str | None:
    """None if the CUDA kernels compile and run here and agree with the CPU kernels (checked once, by
    fused_cuda.self_check); else why not, and training uses the PyTorch step."""
    try:
        from numba import cuda
        if not cuda.is_available():
            return "numba finds no CUDA GPU"
        from . import fused_cuda
        fused_cuda.warm_up(torch.device("cuda"))
        return fused_cuda.self_check()
    except Exception as e:  # numba without its CUDA support, no toolkit it can use, ...
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def set_threads(n: int) -> None:
    if numba is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


class Tables(NamedTuple):
    """A head's description for the kernels: where candidates come from, and the arrays that say which.
    The arrays a source does not use are one-element placeholders (the kernels' types stay the same)."""
    source: int
    shift: np.ndarray  # (V,) float32: the score shift of each word (NOISE)
    prob: np.ndarray  # (V,) float32 and alias (V,) int64: the noise distribution's alias table (NOISE)
    alias: np.ndarray
    drop_hits: bool  # drop a noise draw equal to the target (NOISE)
    offsets: np.ndarray  # (V+1,) int64, points (N,) int64, codes (N,) int8: the Huffman paths (TREE)
    points: np.ndarray
    codes: np.ndarray
    learn_bias: bool  # update the biases (all heads but hs)
    bias_now: bool = False  # each bias change at once (the GPU), not summed to the end of the batch (the CPU)
    share: int = 1  # consecutive examples that share one draw of noise words (--shared-noise; 1: each its own)
    ahead: int = AHEAD  # the CPU kernels prefetch the output rows of the example this many ahead (_touch); 0: none


@functools.lru_cache(maxsize=None)
def _placeholders(device: str) -> tuple:
    return (torch.zeros(1, dtype=torch.float32, device=device), torch.zeros(1, dtype=torch.int64, device=device),
            torch.zeros(1, dtype=torch.int8, device=device))


def tables(head, to=lambda t: t.numpy()) -> tuple[str, Tables, int]:
    """(family, tables, candidates per example) of a head; `to` turns its tensors into the kernel's arrays."""
    f32, i64, i8 = (to(t) for t in _placeholders(str(head.weight.device)))
    if isinstance(head, HSHead):
        return LOGISTIC, Tables(TREE, f32, f32, i64, False, to(head.offsets), to(head.points), to(head.codes),
                                head.learns_bias), head.depth
    if head.family == EXACT:
        raise ValueError("the exact softmax has no fused step")
    s = head.sampler
    return head.family, Tables(NOISE, to(head.shift), to(s.prob), to(s.alias), head.drop_hits, i64, i64, i8,
                               head.learns_bias), head.k + 1


class _Bound(NamedTuple):
    """What train_step needs of a model, made once (the arrays are views of its tensors, which train in place) and
    the kernel's output buffers, reused: a step's Python work was 60 µs, 8% of sg-infonce's (BENCHMARKS.md section
    4). The kernels zero each example's coefficients themselves where the biases read them."""
    key: tuple  # the tensors and noise tables it was made from
    family: str
    tab: Tables
    width: int
    arrays: tuple  # inp (V, D), out (R, D), bias (R,)
    rows: np.ndarray  # (B, C) int64: each example's candidates, written by the kernel
    coef: np.ndarray  # (B, C) float32: -lr dL/dΔ of each, for the biases at the end of the batch
    loss: np.ndarray  # (B,) float32
    ones: np.ndarray  # (B, 1) bool: skip-gram's one valid context slot


_BOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> _Bound


def _bind(model, share: int, n: int) -> _Bound:
    head = model.head
    key = (model.input.data_ptr(), head.weight.data_ptr(), head.bias.data_ptr(), getattr(head, "sampler", None), share)
    bound = _BOUND.get(model)
    if bound is None or bound.key != key or len(bound.loss) < n:
        family, tab, width = tables(head)
        bound = _Bound(key, family, tab._replace(share=share), width,
                       (model.input.numpy(), head.weight.numpy(), head.bias.numpy()),
                       np.zeros((n, width), np.int64), np.zeros((n, width), np.float32), np.zeros(n, np.float32),
                       np.ones((n, 1), np.bool_))
        _BOUND[model] = bound
    return bound


@torch.no_grad()
def train_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True,
               share: int = 1):
    """One step of the compiled CPU loops (backends.Plan.step); same arguments and return value as torch_step, and
    the consecutive examples that share a draw of noise words."""
    n = len(targets)
    b = _bind(model, share, n)
    # One seed per batch from the run's generator keeps a run reproducible and its resume exact; the k
    # noise words of example i are draws i(1+k)+1 .. i(1+k)+k of a counter-based hash of that seed.
    seed = np.uint64(int(torch.randint(2**62, (1,), generator=generator)))
    if mask is None:  # skip-gram: one context slot, the centre word
        ctx, valid = inputs[:, None].numpy(), b.ones[:n]
    else:  # CBOW: (B, 2W) context ids and which slots are real
        ctx, valid = inputs.numpy(), mask.numpy()
    loss = b.loss[:n]
    step(b.family, *b.arrays, ctx, valid, targets.numpy(), b.rows[:n], b.coef[:n], loss, lr, need_loss, b.tab, seed)
    return torch.tensor(loss.sum(dtype=np.float64), dtype=torch.float32)


def step(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab: Tables, seed,
         threads: int | None = None):
    """The kernels on numpy arrays, on `threads` shares (default: numba's current number of threads; 1 is the
    sequential update). inp (V, D), out (R, D) and bias (R,) are updated in place; rows and coef (B, C) receive
    each example's candidates and -lr dL/dΔ (0 where a term is skipped, where the biases learn); loss (B,) each
    example's loss (or the probe: 0, NaN if a score is not finite)."""
    threads = threads or numba.get_num_threads()
    kernel = _logistic_step if family == LOGISTIC else _softmax_step
    # numba types a tuple by its length: the kernel compiled for this dim (the module docstring)
    fixed = (0,) * inp.shape[1] if inp.shape[1] >= FIXED_FROM else ()
    kernel(inp, out, bias, ctx, valid, targets, rows, coef, loss, np.float32(lr), bool(need_loss), threads,
           np.uint64(seed), fixed, *tab)


def warm_up(head) -> None:
    """Compile the kernel of this head's family (or load it from numba's cache) before training is timed."""
    family, tab, width = tables(head)
    # the head's dim: the kernel compiled for it (step's `fixed`)
    emb, vec = np.zeros((1, head.weight.shape[1]), dtype=np.float32), np.zeros(1, dtype=np.float32)
    one = np.zeros(1, dtype=np.int64)
    step(family, emb, emb.copy(), vec.copy(), one[:, None], np.ones((1, 1), dtype=np.bool_), one,
         np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32), vec.copy(), 0.0, True,
         tab._replace(shift=vec, prob=np.ones(1, np.float32), alias=one, offsets=np.zeros(2, np.int64)), 1)


# -- the math of one example, compiled for both targets (fused_cuda compiles these same functions) -----------

def noise_draw(seed, m, prob, alias):
    """Draw number m of a batch from the alias table (prob, alias), from splitmix64(seed + m·golden):
    32 bits choose the column (multiply-shift, uniform to 2^-32), the other 32 bits are the coin that
    keeps the column with probability prob[column] or else gives alias[column]."""
    z = seed + np.uint64(m) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    col = np.int64(((z >> np.uint64(32)) * np.uint64(len(prob))) >> np.uint64(32))
    # [0, 1]: the low 32 bits rounded once to float32, then scaled exactly (the same value as through float64, with
    # no float64 arithmetic, which costs the GPU)
    coin = np.float32(np.uint32(z & np.uint64(0xFFFFFFFF))) * np.float32(2.3283064365386963e-10)
    return col if coin < prob[col] else alias[col]


def count(target, source, width, offsets):
    """How many candidates the example of this target has: its path's length, or the target and k noise words."""
    return offsets[target + 1] - offsets[target] if source == TREE else width


def candidate_function(draw):
    """`candidate` for a target (the CPU or the GPU) on which `draw` is noise_draw."""
    def candidate(first, j, width, target, source, seed, shift, prob, alias, drop_hits, offsets, points, codes):
        """Candidate j of an example: (output row, label is 1, score shift, whether it is a term of the loss). The
        noise words are draws first·width + j, where first = i - i mod share is the first example of example i's
        shared draw (the callers compute it once an example, not once a candidate)."""
        if source == TREE:
            p = offsets[target] + j
            return points[p], codes[p] == 0, np.float32(0.0), True
        if j == 0:
            return target, True, shift[target], True
        r = draw(seed, first * width + j, prob, alias)
        return r, False, shift[r], not (drop_hits and r == target)
    return candidate


def exp32(x):
    """e^x in float32 without a call (the CPU kernels'): within 1.2e-7 (2 ulp) of e^x for x in [-87, 88], NaN for
    NaN; below -87.3 it gives 1.2e-38 and above 88 e^88, where the kernels only add e^x to 1 (σ) or to a sum of at
    least 1 (a softmax). Why: libm's expf is a call, around which the compiler spills the vector registers; the
    kernel alone ran sg-infonce 1.07-1.08x, sg-hs 1.07-1.10x, cbow-nce 1.03-1.06x faster with this (BENCHMARKS.md
    section 4). Cephes's expf: e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts), e^r by its
    polynomial, 2^n made from its bits. The comparisons keep NaN (NaN < lo is false), as the divergence probe
    needs. (libm's logf, once an example, was no slower than the same done so.)"""
    lo, hi = np.float32(-87.33654), np.float32(88.0)
    x = lo if x < lo else x
    x = hi if x > hi else x
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))  # float32 (math.floor gives an int)
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    return (p * r * r + r + np.float32(1.0)) * _float32_bits((np.int32(n) + np.int32(127)) << np.int32(23))


def logistic_function(exp):
    """`logistic` for a target whose exponential is `exp`: math.exp on the GPU, exp32 on the CPU."""
    def logistic(delta, positive, need_loss):
        """One term of a logistic head's loss at score Δ, as (d loss / dΔ, h, q) with the loss h - log q. Label 1's
        loss is softplus(-Δ), with d/dΔ = σ(Δ) - 1; label 0's is softplus(Δ), with d/dΔ = σ(Δ). softplus(x) =
        max(x, 0) + log1p(exp(-|x|)), and log1p(exp(-|Δ|)) = -log σ(|Δ|): so h = max(x, 0) and q = σ(|Δ|), which is
        σ(Δ) or 1 - σ(Δ), in [1/2, 1]. The kernels sum the h's and multiply the q's (in float64: a product of n of
        them is at least 2^-n) and take one log an example, not one a term: the loss of every step cost sg 11-16% of
        its speed with a log1p a term. With need_loss False, h = 0, or NaN when Δ is not finite (the trainer's
        divergence probe), and q = 1; a NaN Δ makes q NaN too."""
        one, zero = np.float32(1.0), np.float32(0.0)
        # float32 throughout (a float64 literal would promote); math's functions have float32 versions on both
        # targets, numpy's ufuncs only on the CPU
        sig = one / (one + exp(-delta))
        x = -delta if positive else delta
        g = sig - one if positive else sig
        if need_loss:
            return g, max(x, zero), sig if delta >= zero else one - sig
        # said outright, not as 0·Δ: numba 0.59's compiler turned 0·Δ into 0 in the hs kernel, losing the probe
        return g, zero if abs(delta) <= np.float32(3.4e38) else np.float32(math.nan), one
    return logistic


logistic = logistic_function(math.exp)  # the GPU's (fused_cuda)


# The CPU kernels' copies; fused_cuda compiles the same functions for the GPU.
_noise = _inline(noise_draw)
_candidate = numba.njit(inline="always")(candidate_function(_noise)) if numba else candidate_function(_noise)
_exp32 = _inline(exp32)
_logistic = _inline(logistic_function(_exp32))


@_inline
def _dims(fixed, row):
    """The length of the rows: len(fixed), a constant of the compiled kernel, or if fixed is empty the row's."""
    return len(fixed) if len(fixed) else row.shape[0]


@_inline
def _hidden(h, grad, inp, ctx, valid, i, fixed):
    """grad = 0; returns the hidden vector: sg's context row itself (read, not changed, until the example's end), or
    cbow's mean of example i's valid context rows, in h."""
    dim = _dims(fixed, h)
    for d in range(dim):
        grad[d] = np.float32(0.0)
    if ctx.shape[1] == 1:
        return inp[ctx[i, 0]]
    for d in range(dim):
        h[d] = np.float32(0.0)
    used = 0
    for s in range(ctx.shape[1]):
        if valid[i, s]:
            row = inp[ctx[i, s]]
            for d in range(dim):
                h[d] += row[d]
            used += 1
    if used > 1:
        scale = np.float32(1.0) / np.float32(used)
        for d in range(dim):
            h[d] *= scale
    return h


@_inline
def _update(o, h, grad, c, fixed):
    """grad += c out_r, with the row before its update (as the gradient needs); then out_r += c h."""
    for d in range(_dims(fixed, h)):
        grad[d] += c * o[d]
        o[d] += c * h[d]


@_inline
def _to_inputs(inp, ctx, valid, i, grad, fixed):
    """Every context row of example i gets the hidden vector's full gradient (word2vec's CBOW rule)."""
    for s in range(ctx.shape[1]):
        if valid[i, s]:
            row = inp[ctx[i, s]]
            for d in range(_dims(fixed, grad)):
                row[d] += grad[d]


@_inline
def _dot(o, h, fixed):
    total = np.float32(0.0)
    for d in range(_dims(fixed, h)):
        total += o[d] * h[d]
    return total


@_inline
def _biases(bias, rows, coef):
    """The biases are updated at the end of the batch, not per example: the biases of the most frequent
    words share a cache line, and two threads writing it per example made the step 3x slower."""
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            bias[rows[i, j]] += coef[i, j]


@_inline
def _touch(out, targets, e, width, source, seed, prob, alias, share):
    """Prefetch every cache line of example e's output rows (its target and noise words), so that they arrive while
    the core works on the examples before e: the step is bound by memory latency, and without it each noise row is
    a miss that its example waits for. A prefetch, not a load: a load that nothing waits on still holds up the
    retiring of everything after it until its line arrives (BENCHMARKS.md section 4: sg-infonce 1.11-1.14x,
    cbow-nce 1.04x). hs prefetches nothing: its upper nodes are in cache, and prefetching its paths was slower."""
    if source != NOISE:
        return
    _prefetch_row(out, targets[e])
    if e % share != 0:  # shared draws: prefetched with the first example that draws them
        return
    for j in range(1, width):
        _prefetch_row(out, _noise(seed, e * width + j, prob, alias))


@_inline
def _prefetch_row(out, r):
    for d in range(0, out.shape[1], 16):  # 16 float32s a 64-byte cache line
        _prefetch(out, r, d)


@_inline
def _draw(rows, i, first, start, j, width, target, source, seed, shift, prob, alias, drop_hits, offsets, points,
          codes):
    """_candidate of example i (rows: (B, C), the batch's): a noise word of a shared draw is read from the rows of the
    draw's first example where this thread wrote them (first in its share, which begins at start), not drawn again
    (the hash and two reads of the alias table)."""
    if source == NOISE and j > 0 and first != i and first >= start:
        r = rows[first, j]
        return r, False, shift[r], not (drop_hits and r == target)
    return _candidate(first, j, width, target, source, seed, shift, prob, alias, drop_hits, offsets, points, codes)


@_inline
def _noise_example(out, bias, h, grad, target, i, rows, coef, lr, need_loss, seed, shift, prob, alias, drop_hits,
                   offsets, points, codes, width, learn_bias, bias_now, share, fixed):
    """The logistic loss of example i over its target and noise words, each row updated right after its score (a
    noise word drawn twice sees its first update); returns the example's loss. (Its noise words are drawn again
    for each example of a shared draw: reading them from the first example's rows, as _softmax_step does, was no
    faster here.)"""
    total, first = np.float32(0.0), i - i % share
    prod = 1.0  # float64: the product of the terms' q (logistic)
    for j in range(width):
        r, positive, s, used = _candidate(first, j, width, target, NOISE, seed, shift, prob, alias, drop_hits,
                                          offsets, points, codes)
        rows[j] = r
        if not used:
            continue
        g, hinge, q = _logistic(bias[r] + s + _dot(out[r], h, fixed), positive, need_loss)
        total += hinge
        prod *= q
        if abs(g) < TINY:
            continue
        c = -lr * g
        _update(out[r], h, grad, c, fixed)
        coef[j] = c
        if learn_bias and bias_now:
            bias[r] += c
    return total - np.float32(math.log(prod))


@_inline
def _path_example(out, bias, mine, top, h, grad, target, rows, coef, lr, need_loss, offsets, points, codes,
                  fixed):
    """The hs loss over the target's path: every score first, then every update. A path's nodes are distinct and h
    is fixed within the example, so this is the sequential loop's result; but the scores, independent of each
    other, overlap in the core (sg-hs 1.2x). Nodes at or above `top` are read and written in mine[r - top], this
    thread's copy of those rows. Returns the example's loss; coef holds the coefficients."""
    p0 = offsets[target]
    m = offsets[target + 1] - p0
    for j in range(m):
        r = points[p0 + j]
        rows[j] = r
        coef[j] = bias[r] + _dot(mine[r - top] if r >= top else out[r], h, fixed)
    total, prod = np.float32(0.0), 1.0
    for j in range(m):
        g, hinge, q = _logistic(coef[j], codes[p0 + j] == 0, need_loss)
        total += hinge
        prod *= q
        coef[j] = np.float32(0.0) if abs(g) < TINY else -lr * g
    for j in range(m):
        r, c = rows[j], coef[j]
        if c == np.float32(0.0):
            continue
        _update(mine[r - top] if r >= top else out[r], h, grad, c, fixed)
    return total - np.float32(math.log(prod))


@_inline
def _sync(out, top, mine, base, give):
    """hs's copy of the top rows (module docstring): with `give`, add its changes since it was taken (mine - base) to
    the shared rows; then take the shared rows, the other threads' changes given so far included, as mine and base."""
    for q in range(mine.shape[0]):
        row = out[top + q]
        for d in range(row.shape[0]):
            value = row[d] + (mine[q, d] - base[q, d]) if give else row[d]
            row[d] = value
            mine[q, d] = value
            base[q, d] = value


@_serial
def _logistic_range(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, seed, fixed, source, shift,
                    prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead, i0, i1, hidden,
                    grad, mine, base, top, several):
    """The logistic loop over examples [i0, i1), in order, by one thread (`several`: others run beside it); hs's top
    rows in this thread's copy `mine` (taken at the start, given every SYNC examples when `several`, and at the end)."""
    _sync(out, top, mine, base, False)
    for i in range(i0, i1):
        if several and (i - i0) % SYNC == SYNC - 1:
            _sync(out, top, mine, base, True)  # give the changes, take the others'
        if ahead and i + ahead < i1:
            _touch(out, targets, i + ahead, rows.shape[1], source, seed, prob, alias, share)
        if learn_bias and not bias_now:  # _biases reads every coefficient of the batch (the buffers are reused)
            coef[i, :] = np.float32(0.0)
        h = _hidden(hidden, grad, inp, ctx, valid, i, fixed)
        if source == TREE:
            loss[i] = _path_example(out, bias, mine, top, h, grad, targets[i], rows[i], coef[i], lr, need_loss,
                                    offsets, points, codes, fixed)
        else:
            loss[i] = _noise_example(out, bias, h, grad, targets[i], i, rows[i], coef[i], lr, need_loss, seed,
                                     shift, prob, alias, drop_hits, offsets, points, codes, rows.shape[1], learn_bias,
                                     bias_now, share, fixed)
        _to_inputs(inp, ctx, valid, i, grad, fixed)
    _sync(out, top, mine, base, True)


def _scratch(threads, dim, width, out, source):
    """Each thread's hidden vector, gradient and scores, 128 bytes apart from the next thread's (two threads writing
    one cache line, false sharing, made some runs twice as slow, depending on where malloc put them); and for hs the
    TOP_NODES inner nodes nearest the root (the last created, so the highest rows), which are on most paths: each
    thread works on its own copy of them (the copy, and the rows as it took them; the module docstring)."""
    scratch = np.zeros((threads, 2 * dim + width + 32), dtype=np.float32)
    top = out.shape[0] - min(TOP_NODES, out.shape[0]) if source == TREE else out.shape[0]
    copies = np.empty((threads, out.shape[0] - top, dim + 32), dtype=np.float32)
    return scratch, top, copies, np.empty_like(copies)


_scratch_in = _inline(_scratch)


@_jit
def _logistic_step(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, threads, seed, fixed,
                   source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead):
    n, width = rows.shape
    dim = inp.shape[1]
    per = (n + threads - 1) // threads
    scratch, top, copies, bases = _scratch_in(threads, dim, width, out, source)
    for t in prange(threads):  # thread t: examples [t·per, (t+1)·per), in order
        _logistic_range(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, seed, fixed, source,
                        shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead,
                        t * per, min(n, (t + 1) * per), scratch[t, :dim], scratch[t, dim:2 * dim], copies[t], bases[t],
                        top, threads > 1)
    if learn_bias and not bias_now:
        _biases(bias, rows, coef)


@_serial
def _softmax_range(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, seed, fixed, source, shift,
                   prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead, i0, i1, hidden,
                   grad, deltas, kept):
    """The softmax loop over examples [i0, i1), in order, by one thread."""
    width = rows.shape[1]
    for i in range(i0, i1):
        if ahead and i + ahead < i1:
            _touch(out, targets, i + ahead, width, source, seed, prob, alias, share)
        if learn_bias and not bias_now:  # _biases reads every coefficient of the batch (the buffers are reused)
            coef[i, :] = np.float32(0.0)
        h = _hidden(hidden, grad, inp, ctx, valid, i, fixed)
        top, first = np.float32(-np.inf), i - i % share
        for j in range(width):  # every score first: each gradient needs the softmax of all of them
            r, positive, s, used = _draw(rows, i, first, i0, j, width, targets[i], source, seed, shift, prob,
                                         alias, drop_hits, offsets, points, codes)
            rows[i, j], kept[j] = r, used
            if used:
                deltas[j] = bias[r] + s + _dot(out[r], h, fixed)
                top = max(top, deltas[j])
        z, target = np.float32(0.0), deltas[0]
        for j in range(width):
            if kept[j]:
                deltas[j] = _exp32(deltas[j] - top)  # kept for the gradients: one exp a candidate
                z += deltas[j]
        term = top + math.log(z) - target  # -log softmax of the target (candidate 0)
        loss[i] = term if need_loss else np.float32(0.0) * term  # NaN if a score is not finite: the probe
        for j in range(width):
            if not kept[j]:
                continue
            g = deltas[j] / z - (np.float32(1.0) if j == 0 else np.float32(0.0))
            if abs(g) < TINY:
                continue
            c = -lr * g
            _update(out[rows[i, j]], h, grad, c, fixed)
            coef[i, j] = c
            if learn_bias and bias_now:
                bias[rows[i, j]] += c
        _to_inputs(inp, ctx, valid, i, grad, fixed)


@_jit
def _softmax_step(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, threads, seed, fixed,
                  source, shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead):
    n, width = rows.shape
    dim = inp.shape[1]
    per = (n + threads - 1) // threads
    scratch = np.zeros((threads, 2 * dim + width + 32), dtype=np.float32)  # see _scratch
    kept = np.zeros((threads, width + 128), dtype=np.bool_)
    for t in prange(threads):
        _softmax_range(inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, seed, fixed, source,
                       shift, prob, alias, drop_hits, offsets, points, codes, learn_bias, bias_now, share, ahead,
                       t * per, min(n, (t + 1) * per), scratch[t, :dim], scratch[t, dim:2 * dim],
                       scratch[t, 2 * dim:2 * dim + width], kept[t])
    if learn_bias and not bias_now:
        _biases(bias, rows, coef)
