"""The compiled GPU training step: update.py's per-example loops, one per family of heads, as CUDA kernels.

Why not the PyTorch step with a large batch: a GPU needs hundreds of thousands of examples per step to
be busy, and summed mini-batch gradients at that size overshoot. A frequent word repeats thousands of
times in one batch, and all its gradients are taken at the same stale parameters: skip-gram at such batches
diverged, and capping each row's step kept it finite but lost quality.

How: Hogwild, as on the CPU, with many more workers. A worker is one warp (32 threads, one block). It
takes a contiguous share of the launch's examples and runs update.py's loop over it: each lane holds every
32nd component of the hidden vector and of its gradient, and a dot product is a warp sum. The updates are
atomic adds, so no update is lost; so are the biases' (`bias_now`), where the CPU sums them over its 4,096-example
batch: summed over a launch of a million examples they cost sg-nce most of its WS353.
How stale a read can be is set by the number of workers in flight, and not by the launch size: a block is one
warp, and an SM holds at most 32 blocks, so at most 4,224 warps are in flight on an H200 (132 SMs) however many
workers a launch has (WORKERS: more than fit only shorten each one's share, so that the launch's last wave leaves
fewer SMs idle). So a launch can hold a million examples, which amortises the launch and the Python loop, while the
staleness stays that of a 4,096-example mini-batch, at which the PyTorch step matched the sequential CPU step's
scores.

The candidates, the noise draws and the loss terms are update.py's functions compiled for the GPU, so with one
worker a kernel is the CPU kernel's sequential update exactly, up to float rounding. tests/test_fused_cuda.py
checks it in numba's CUDA simulator, with one worker against the float64 reference and with several workers
for the Hogwild path; `self_check` checks it on the GPU before the first step.

This module imports numba.cuda, so import it only for a CUDA run, or with NUMBA_ENABLE_CUDASIM=1 for the
simulator.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from . import cpu
from .cuda_update import MAX_CANDIDATES, kernels  # noqa: F401 (the limits of the GPU, plan.unsupported reads here)
from numba import config, cuda  # after cuda_update, which makes numpy ready for numba-cuda
from .kernel import TREE, Tables, tables
from .update import WORDS_ONLY
from ..model.heads import LOGISTIC

WORKERS = 16384  # warps a launch; at most 32 an SM run at once (the module docstring)
# hs: every example's path starts at the root, so the root's row is read by every warp in flight before their
# updates land: a summed batch of that many gradients. The PyTorch step diverged on cbow-hs at 1,024 and trained
# at 256 (plan.largest_summed_batch); on the GPU, unmeasured yet, hs keeps that staleness.
TREE_WORKERS = 256
WARPS = 1  # warps a block (kernels()): 1 keeps the warps in flight at 32 an SM
# registers a thread: at 88, the compiler's choice for dim 100, an SM held 20 warps (ncu: latency-bound, 0.93
# eligible warps a scheduler); 64 lets it hold its 32 blocks. None: the compiler's choice
MAX_REGISTERS = 64
MAX_DIM = 1024  # 32 components a lane at most; a larger --dim runs the PyTorch step
# the Tables fields the kernels take, in order: those after `ahead` are the CPU's alone (its threads' copies, its
# packed alias table)
GPU_FIELDS = Tables._fields.index("ahead") + 1


def launch(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab, seed,
           workers: int = WORKERS, stream=0, subwords=None):
    """Run a family's kernel on device arrays (or numpy arrays in the simulator); `tab` is kernel.Tables of
    device arrays; `seed` an int or a one-element int64 device array. rows and coef must be zero, and are written
    only where they have a row per example (else (1, C) placeholders). The biases are updated in the kernel where
    tab.bias_now, else not at all: then bias[rows] += coef after it. subwords: (offsets, rows) of each word's input
    rows (update.Params's sub_offsets and sub_rows), or None: a word's row is its own."""
    n = targets.shape[0]
    if subwords is None:
        subwords = (_words_only(),) * 2
    if inp.shape[1] > MAX_DIM:
        raise ValueError(f"the CUDA step supports dim <= {MAX_DIM}")
    if isinstance(seed, (int, np.integer)):
        seed = cuda.to_device(np.array([seed], dtype=np.int64))
    per = max(1, -(-n // max(1, workers)))  # examples a worker
    warps = 1 if config.ENABLE_CUDASIM else WARPS  # the simulator's warp sum is a barrier of the whole block
    blocks = max(1, -(-n // (per * warps)))
    logistic_kernel, softmax_kernel = kernels(-(-inp.shape[1] // 32), warps, MAX_REGISTERS)
    kernel = logistic_kernel if family == LOGISTIC else softmax_kernel
    kernel[blocks, 32 * warps, stream](inp, out, bias, *subwords, ctx, valid, targets, rows, coef, loss,
                                       np.float32(lr), bool(need_loss), per, seed, *tab[:GPU_FIELDS])


@functools.lru_cache(maxsize=None)
def _words_only():
    """update.WORDS_ONLY on the device, made once."""
    return cuda.to_device(WORDS_ONLY)


@torch.no_grad()
def train_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True,
               share: int = 1):
    """cpu.train_step on CUDA; same arguments and return value (the summed loss, a 0-d tensor left on the
    device)."""
    head = model.head
    device = targets.device
    family, tab, width = tables(head, to=cuda.as_cuda_array)
    # a launch is too large a batch to sum the biases over (module docstring)
    tab = tab._replace(bias_now=True, share=share)
    # one seed per batch, from the run's generator (as cpu.train_step does), left on the device: read on the host,
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
    workers = TREE_WORKERS if tab.source == TREE else WORKERS
    subwords = None if model.sub_offsets is None else (cuda.as_cuda_array(model.sub_offsets),
                                                       cuda.as_cuda_array(model.sub_rows))
    launch(family, *arrays, lr, need_loss, tab, seed, workers=workers, stream=stream, subwords=subwords)
    return loss.sum()


def warm_up(device: torch.device, dim: int = 1, losses=("neg", "infonce", "hs")) -> None:
    """Compile the kernels of these heads for this dim (a kernel a family and 32 components of dim) before training
    is timed: a problem of one example on the device. Compiled in the first launch instead, a run's first second
    was the compiler's, and the first epoch's words/s told of the compiler, not of the step."""
    from ..model.sampling import AliasSampler
    from ..model.heads import HSHead, SampledHead
    from ..model.word2vec import Word2Vec

    sampler = AliasSampler(np.array([2, 1]), 0.75, device)
    for loss in losses:
        head = HSHead(np.array([2, 1]), dim) if loss == "hs" else SampledHead(2, dim, sampler, 1, loss)
        model = Word2Vec(2, dim, "sg", head).to(device)
        ids = torch.zeros(1, dtype=torch.int64, device=device)
        train_step(model, ids, ids, 0.0, None, torch.Generator(device=device))
    cuda.synchronize()


def self_check(tol: float = 1e-4, n: int = 64) -> str | None:
    """One step of small problems of each family and candidate source (sg-nce, cbow-neg with some empty context
    slots, sg-hs, cbow-sampled-softmax; dim 40, so lanes are partly used) and of subword rows (sg-neg, whose
    centre carries its hidden vector, and cbow-infonce) with one worker here and with the CPU kernel on one thread:
    the same sequential update, so they must agree to float rounding. None if they do, else what differed. Why at
    run time: the kernels are tested in numba's simulator, but a GPU, driver or numba version they were never run
    on could still compile them wrongly, and a wrong kernel would train silently worse vectors instead of failing."""
    from ..model.heads import make_head
    from ..model.sampling import AliasSampler

    rng = np.random.default_rng(0)
    v, dim, k, lr, buckets = 40, 40, 3, np.float32(0.05), 20
    counts = (1000 / np.arange(1, v + 1)).astype(np.int64) + 1
    sampler = AliasSampler(counts, 0.75)
    for arch, loss_name, subs in (("sg", "nce", False), ("cbow", "neg", False), ("sg", "hs", False),
                                  ("cbow", "sampled-softmax", False), ("sg", "neg", True), ("cbow", "infonce", True)):
        head = make_head(loss_name, counts, dim, sampler, k)
        family, tab, width = tables(head)
        tab = tab._replace(bias_now=True)  # as train_step runs it; the CPU kernel on one thread does the same
        slots = 1 if arch == "sg" else 6
        ctx = rng.integers(0, v, (n, slots))
        if arch == "sg":  # a centre's examples in a row, as skip-gram makes them
            ctx = np.sort(ctx, axis=0)
        valid = np.ones((n, slots), dtype=np.bool_) if arch == "sg" else rng.random((n, slots)) < 0.6
        valid[:, 0] = True
        targets = rng.integers(0, v, n)
        rows_n = len(head.weight)
        subwords = (WORDS_ONLY, WORDS_ONLY)
        if subs:  # each word's own row and 0-4 n-gram rows, a bucket twice in some words
            parts = [np.concatenate(([w], v + rng.integers(0, buckets, rng.integers(0, 5)))) for w in range(v)]
            subwords = (np.cumsum([0] + [len(q) for q in parts]).astype(np.int64), np.concatenate(parts))
        start = [rng.normal(0, s, shape).astype(np.float32) for s, shape in
                 ((0.5, (v + buckets * subs, dim)), (0.3, (rows_n, dim)), (0.1, rows_n))]
        want = [a.copy() for a in start] + [np.zeros((n, width), np.int64), np.zeros((n, width), np.float32),
                                            np.zeros(n, np.float32)]
        cpu.step(family, *want[:3], ctx, valid, targets, *want[3:], lr, True, tab, 11, threads=1, subwords=subwords)
        dev = [cuda.to_device(a) for a in (*start, ctx, valid, targets, np.zeros((n, width), np.int64),
                                           np.zeros((n, width), np.float32), np.zeros(n, np.float32))]
        dtab = tab._replace(**{f: cuda.to_device(x) for f, x in tab._asdict().items() if isinstance(x, np.ndarray)})
        launch(family, *dev, lr, True, dtab, 11, workers=1,
               subwords=tuple(cuda.to_device(a) for a in subwords) if subs else None)
        cuda.synchronize()
        got = [dev[i].copy_to_host() for i in (0, 1, 2, 6, 7, 8)]
        case = f"{arch}-{loss_name}" + (" with subwords" if subs else "")
        if not (got[3] == want[3]).all():
            return f"self-check: the CUDA kernel chose other candidates than the CPU kernel ({case})"
        for name, g, w in zip(("input rows", "output rows", "biases", "losses"), got[:3] + got[5:],
                              want[:3] + want[5:]):
            err = float(np.max(np.abs(g - w) / (1 + np.abs(w))))
            if not err <= tol:  # also catches NaN
                return f"self-check: the CUDA kernel's {name} differ from the CPU kernel's by {err:.1e} ({case})"
    return None
