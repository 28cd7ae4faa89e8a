"""The fused CPU training step for the NEG and NCE heads: word2vec's update loop, compiled with numba.
On a GPU, train_step hands over to fused_cuda.py: the same loop as a CUDA kernel.

Why: on the CPU the PyTorch step (Word2Vec.train_step + SampledHead.step) is bound by memory traffic, not
arithmetic: each op is a separate pass over a gathered (B, 1+k, D) copy of the rows (gather, multiply,
reduce, scale, scatter), so every row an example touches is read and written several times (BENCHMARKS.md
section 4). This loop reads each row once and writes it once, from the embedding matrices themselves.

What it computes, per example and in order (word2vec.c's and gensim's update):
  h = the centre's input row (sg) or the mean of the context rows (cbow)
  for the target and each of the k noise words w: Δ = <out_w, h> + b_w + shift_w (shift = -log(k q(w))
      for NCE, 0 for NEG), c = -lr dL/dΔ; grad += c out_w; then out_w += c h
  every context row (cbow) or the centre row (sg) += grad: the full gradient, word2vec's CBOW rule.
The per-example math is the PyTorch head's (tests/test_fused.py checks both against a float64 reference);
the difference is when rows change: here after each example, there after each mini-batch. Two details:
- The biases (word2vec has none) are summed over the batch and applied at its end. The biases of the most
  frequent words share a cache line, and two threads writing it for every example made the step 3x slower.
- A coefficient |dL/dΔ| < 1e-6 is skipped: the change it would make, at most lr·1e-6·|h_d| per weight, is at
  the float32 rounding step of the weights. Without any cut, late epochs on the slice slowed down on denormal
  numbers from saturated scores. In trained models fewer than 0.05% of the terms fall below the cut, for NEG
  and NCE alike, so it changes neither the scores nor the work (BENCHMARKS.md sections 1 and 4).

Threads: the batch is split into one contiguous share per thread, and the threads update the shared
matrices without locks (Hogwild, as word2vec.c and gensim do), so runs with several threads differ in the
last bits. With one thread the result is a function of the inputs: reproducible, and resumable exactly.

Noise: the k noise words of example i are draws i(1+k)+1 .. i(1+k)+k of a counter-based hash (splitmix64)
of one seed per batch, taken from the run's torch generator; so they do not depend on the threads either.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

try:
    import numba
except ImportError:  # the PyTorch step is used instead
    numba = None

if numba is not None:
    # 'fast' minus nnan/ninf: the compiler may reorder sums (vectorising the dot products) but must keep
    # NaN and inf, because a non-finite score is how divergence is detected
    _MATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
    _jit = numba.njit(parallel=True, fastmath=_MATH, cache=True, nogil=True)
    _inline = numba.njit(inline="always", cache=True)
    prange = numba.prange
else:  # keep the module importable; unsupported() says numba is missing
    def _jit(f):
        return f
    _inline = _jit
    prange = range


def unsupported(device: torch.device, loss: str, dim: int = 0) -> str | None:
    """None if the fused step can run here, else what it needs (a phrase for a message): numba, a NEG or NCE
    head, and the CPU or a GPU on which the CUDA kernel compiles and passes its self-check, with dim up to
    fused_cuda.MAX_DIM."""
    if numba is None:
        return "numba (pip install numba)"
    if loss not in ("neg", "nce"):
        return "--loss neg or nce"
    if device.type == "cuda":
        why = cuda_unavailable()
        if why is not None:
            return f"a GPU that numba's CUDA target can use (here: {why})"
        from . import fused_cuda
        return None if dim <= fused_cuda.MAX_DIM else f"--dim {fused_cuda.MAX_DIM} or less on a GPU"
    return None if device.type == "cpu" else "the CPU or a CUDA GPU"


def selected(device: torch.device, kernel: str, loss: str, dim: int) -> bool:
    """Whether training runs the fused step: --kernel is not torch and the step can run here."""
    return kernel != "torch" and unsupported(device, loss, dim) is None


@functools.lru_cache(maxsize=None)
def cuda_unavailable() -> str | None:
    """None if the CUDA kernel compiles and runs here and agrees with the CPU kernel (checked once, by
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


@torch.no_grad()
def train_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
    """Word2Vec.train_step for a SampledHead; same arguments and return value. On CUDA: fused_cuda.py."""
    if targets.is_cuda:
        from . import fused_cuda
        return fused_cuda.train_step(model, inputs, targets, lr, mask, generator, need_loss)
    head = model.head
    # One seed per batch from the run's generator keeps a run reproducible and its resume exact; the k
    # noise words of example i are draws i(1+k)+1 .. i(1+k)+k of a counter-based hash of that seed.
    seed = np.uint64(int(torch.randint(2**62, (1,), generator=generator)))
    rows = np.empty((len(targets), 1 + head.k), dtype=np.int64)  # (B, 1+k): target, then the noise words
    rows[:, 0] = targets.numpy()
    if mask is None:  # skip-gram: one context slot, the centre word
        ctx, valid = inputs[:, None].numpy(), np.ones((len(inputs), 1), dtype=np.bool_)
    else:  # CBOW: (B, 2W) context ids and which slots are real
        ctx, valid = inputs.numpy(), mask.numpy()
    loss = np.zeros(len(targets), dtype=np.float32)  # (B,)
    step(model.input.numpy(), head.weight.numpy(), head.bias.numpy(), head.shift.numpy(), ctx, valid, rows,
         seed, head.sampler.prob.numpy(), head.sampler.alias.numpy(), lr, not head.nce, need_loss, loss)
    return torch.tensor(loss.sum(dtype=np.float64), dtype=torch.float32)


def step(inp, out, bias, shift, ctx, valid, rows, seed, prob, alias, lr, skip_target_noise, need_loss, loss,
         threads: int | None = None):
    """The kernel on numpy arrays (see _step), on `threads` shares (default: numba's current number of
    threads; 1 is the sequential update)."""
    _step(inp, out, bias, shift, ctx, valid, rows, np.uint64(seed), prob, alias, np.float32(lr),
          bool(skip_target_noise), bool(need_loss), loss, threads or numba.get_num_threads())


def warm_up(device: torch.device = torch.device("cpu")) -> None:
    """Compile the kernel (or load it from numba's cache) before training is timed."""
    if device.type == "cuda":
        from . import fused_cuda
        return fused_cuda.warm_up(device)
    emb, vec = np.zeros((1, 1), dtype=np.float32), np.zeros(1, dtype=np.float32)
    step(emb, emb.copy(), vec.copy(), vec, np.zeros((1, 1), dtype=np.int64), np.ones((1, 1), dtype=np.bool_),
         np.zeros((1, 2), dtype=np.int64), 1, np.ones(1, dtype=np.float32), np.zeros(1, dtype=np.int64),
         0.0, True, True, vec.copy())


def noise_draw(seed, m, prob, alias):
    """Draw number m of a batch from the alias table (prob, alias), from splitmix64(seed + m·golden):
    32 bits choose the column (multiply-shift, uniform to 2^-32), the other 32 bits are the coin that
    keeps the column with probability prob[column] or else gives alias[column]."""
    z = seed + np.uint64(m) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    col = np.int64(((z >> np.uint64(32)) * np.uint64(len(prob))) >> np.uint64(32))
    coin = np.float32((z & np.uint64(0xFFFFFFFF)) * 2.3283064365386963e-10)  # [0, 1)
    return col if coin < prob[col] else alias[col]


def logistic(delta, target, need_loss):
    """One term of the NEG / NCE loss at score Δ: (d loss / dΔ, the loss). The target's loss is
    softplus(-Δ), with d/dΔ = σ(Δ) - 1; a noise word's is softplus(Δ), with d/dΔ = σ(Δ). With need_loss
    False the loss is 0·Δ, which is NaN when Δ is not finite: the trainer's divergence probe."""
    one, zero = np.float32(1.0), np.float32(0.0)
    # float32 throughout (a float64 literal would promote); math's functions have float32 versions on both
    # targets, numpy's ufuncs only on the CPU
    sig = one / (one + math.exp(-delta))
    x = -delta if target else delta
    g = sig - one if target else sig
    if need_loss:
        return g, max(x, zero) + math.log1p(math.exp(-abs(x)))
    return g, zero * delta


# The CPU kernel's copies; fused_cuda compiles the same two functions for the GPU.
_noise = _inline(noise_draw)
_logistic = _inline(logistic)


@_jit
def _step(inp, out, bias, shift, ctx, valid, rows, seed, prob, alias, lr, skip_target_noise, need_loss,
          loss, threads):
    """inp, out (V, D) float32 and bias (V,), updated in place; shift (V,); ctx, valid (B, S); rows (B, 1+k);
    loss (B,) receives each example's loss (need_loss) or 0·Δ, which is NaN if any score is not finite."""
    n, k1 = rows.shape
    dim = inp.shape[1]
    zero, one = np.float32(0.0), np.float32(1.0)
    tiny = np.float32(1e-6)  # see the module docstring
    per = (n + threads - 1) // threads
    coef = np.zeros((n, k1), dtype=np.float32)  # -lr dL/dΔ, for the bias update after the loop
    # each thread's hidden vector and gradient, 128 bytes apart from the next thread's: two threads writing
    # one cache line (false sharing) made some runs twice as slow, depending on where malloc put them
    scratch = np.zeros((threads, 2 * dim + 32), dtype=np.float32)
    for t in prange(threads):  # thread t: examples [t·per, (t+1)·per), in order
        h = scratch[t, :dim]  # hidden vector
        grad = scratch[t, dim:2 * dim]  # -lr dL/dh
        for i in range(t * per, min(n, (t + 1) * per)):
            used = 0
            for d in range(dim):
                h[d] = zero
                grad[d] = zero
            for s in range(ctx.shape[1]):
                if valid[i, s]:
                    row = inp[ctx[i, s]]
                    for d in range(dim):
                        h[d] += row[d]
                    used += 1
            if used > 1:
                scale = one / np.float32(used)
                for d in range(dim):
                    h[d] *= scale
            for j in range(1, k1):
                rows[i, j] = _noise(seed, i * k1 + j, prob, alias)
            total = zero
            for j in range(k1):
                r = rows[i, j]
                # word2vec skips a negative that equals the target; true NCE keeps it (independent draws)
                if j > 0 and skip_target_noise and r == rows[i, 0]:
                    continue
                o = out[r]
                delta = bias[r] + shift[r]
                for d in range(dim):
                    delta += o[d] * h[d]
                g, term = _logistic(delta, j == 0, need_loss)
                total += term
                if abs(g) < tiny:
                    continue
                c = -lr * g
                for d in range(dim):
                    grad[d] += c * o[d]  # with the output row before its update, as the gradient needs
                    o[d] += c * h[d]
                coef[i, j] = c
            loss[i] = total
            # every context word gets the hidden vector's full gradient (word2vec's CBOW rule)
            for s in range(ctx.shape[1]):
                if valid[i, s]:
                    row = inp[ctx[i, s]]
                    for d in range(dim):
                        row[d] += grad[d]
    # The biases are updated at the end of the batch, not per example: the biases of the most frequent
    # words share a cache line, and two threads writing it per example made the step 3x slower.
    for i in range(n):
        for j in range(k1):
            bias[rows[i, j]] += coef[i, j]
