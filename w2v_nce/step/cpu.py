"""The compiled CPU training step: a batch's examples split among threads, each running update.py's loop of the head's
family over its share.

Why: on the CPU the PyTorch step (torch_step.py) is bound by memory traffic, not arithmetic: each op is a separate
pass over a gathered (B, C, D) copy of the rows, so every row an example touches is read and written several times.
These loops read each row once and write it once, from the embedding matrices themselves.

Threads (Hogwild, as word2vec.c and gensim): a batch is split into one contiguous share per thread (a process of
torchrun; one process trains by pieces, pieces.py, each thread on its own with the same loops), and the threads
update the shared matrices without locks, so runs with several threads differ in the last bits; one thread is
reproducible and resumable exactly.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np
import torch

from .. import jit_cache
from ..model.heads import LOGISTIC
from .kernel import Tables, tables
from .native import inline, jit, numba, prange
from .scratch import of_thread, scratch
from .update import WORDS_ONLY, Batch, Params, add_biases, params_of, fixed_for, logistic_range, own_rows, softmax_range


def set_threads(n: int) -> None:
    if numba is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


_scratch = inline(scratch)


@jit
def _logistic_step(params, batch, tab, lr, need_loss, threads, seed, fixed):
    n, width, dim = batch.rows.shape[0], batch.rows.shape[1], params.inp.shape[1]
    per = (n + threads - 1) // threads
    shared = _scratch(threads, dim, width, params.out, tab.source)
    for t in prange(threads):  # thread t: examples [t·per, (t+1)·per), in order
        logistic_range(params, batch, tab, tab.kind, params.rows_in, lr, need_loss, seed, fixed, t * per,
                       min(n, (t + 1) * per), of_thread(shared, t, dim, width), threads > 1)
    if tab.learn_bias and not tab.bias_now:
        add_biases(params.bias, batch.rows, batch.coef)


@jit
def _softmax_step(params, batch, tab, lr, need_loss, threads, seed, fixed):
    n, width, dim = batch.rows.shape[0], batch.rows.shape[1], params.inp.shape[1]
    per = (n + threads - 1) // threads
    shared = _scratch(threads, dim, width, params.out, tab.source)
    for t in prange(threads):
        softmax_range(params, batch, tab, params.rows_in, lr, need_loss, seed, fixed, t * per, min(n, (t + 1) * per),
                      of_thread(shared, t, dim, width))
    if tab.learn_bias and not tab.bias_now:
        add_biases(params.bias, batch.rows, batch.coef)


class _Bound(NamedTuple):
    """What train_step needs of a model, made once (the arrays are views of its tensors, which train in place) and
    the kernel's output buffers, reused (a step's Python work is a tenth of a small batch's time otherwise)."""
    key: tuple  # the tensors and noise tables it was made from
    family: str
    tab: Tables
    params: Params
    rows: np.ndarray  # (B, C) int64
    coef: np.ndarray  # (B, C) float32
    loss: np.ndarray  # (B,) float32
    ones: np.ndarray  # (B, 1) bool: skip-gram's one valid context slot


_BOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> _Bound


def _bind(model, share: int, n: int) -> _Bound:
    head = model.head
    key = (model.input.data_ptr(), head.weight.data_ptr(), head.bias.data_ptr(), getattr(head, "sampler", None), share)
    bound = _BOUND.get(model)
    if bound is None or bound.key != key or len(bound.loss) < n:
        family, tab, width = tables(head)
        bound = _Bound(key, family, tab._replace(share=share),
                       params_of(model),
                       np.zeros((n, width), np.int64), np.zeros((n, width), np.float32), np.zeros(n, np.float32),
                       np.ones((n, 1), np.bool_))
        _BOUND[model] = bound
    return bound


@torch.no_grad()
def train_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True,
               share: int = 1):
    """One step of the compiled CPU loops (plan.Plan.step); same arguments and return value as torch_step, and the
    consecutive examples that share a draw of noise words."""
    n = len(targets)
    b = _bind(model, share, n)
    # one seed a batch from the run's generator keeps a run reproducible and its resume exact
    seed = np.uint64(int(torch.randint(2**62, (1,), generator=generator)))
    if mask is None:  # skip-gram: one context slot, the centre word
        ctx, valid = inputs[:, None].numpy(), b.ones[:n]
    else:  # CBOW: (B, 2W) context ids and which slots are real
        ctx, valid = inputs.numpy(), mask.numpy()
    loss = b.loss[:n]
    _run(b.family, own_rows(b.params, ctx.shape[1]), Batch(ctx, valid, targets.numpy(), b.rows[:n], b.coef[:n], loss),
         b.tab, lr, need_loss, seed)
    return torch.tensor(loss.sum(dtype=np.float64), dtype=torch.float32)


def step(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab: Tables, seed,
         threads: int | None = None, subwords: tuple = (WORDS_ONLY, WORDS_ONLY), apart: bool = False):
    """The kernels on numpy arrays, on `threads` shares (default: numba's current number of threads; 1 is the
    sequential update). inp (V, D), out (R, D) and bias (R,) are updated in place; rows and coef (B, C) receive
    each example's candidates and -lr dL/dΔ (0 where a term is skipped, where the biases learn); loss (B,) each
    example's loss (or the probe: 0, NaN if a score is not finite). subwords: (offsets, rows) of each word's
    input rows (update.Params), or words only. apart: compile the kernel in a child process (_run)."""
    params = own_rows(Params(inp, out, bias, *subwords), ctx.shape[1])
    batch = Batch(ctx, valid, targets, rows, coef, loss)
    _check_apart(params, batch, tab)  # train_step's and the pieces' arrays are apart as they are made (20-35 us a call)
    _run(family, params, batch, tab, lr, need_loss, seed, threads, apart)


def _run(family, params: Params, batch: Batch, tab: Tables, lr, need_loss, seed, threads: int | None = None,
         apart: bool = False) -> None:
    """The step's kernel on these arguments; with `apart`, compiled in a child process if numba's cache lacks it
    (jit_cache.compiled_apart: a run's warm-up)."""
    threads = threads or numba.get_num_threads()
    kernel = _logistic_step if family == LOGISTIC else _softmax_step
    dim = params.inp.shape[1]
    args = (params, batch, tab, np.float32(lr), bool(need_loss), threads, np.uint64(seed), fixed_for(dim))
    if apart:
        jit_cache.compiled_apart(kernel, *args)
    kernel(*args)


def _check_apart(params: Params, batch: Batch, tab: Tables) -> None:
    """The arrays the loops write share no memory with any other array of the call: the loops are compiled on that
    promise (native.unaliased), which a caller of step(), given arrays, could otherwise break without a word."""
    written = (params.inp, params.out, params.bias, batch.rows, batch.coef, batch.loss)
    arrays = [a for a in (*params, *batch, *tab) if isinstance(a, np.ndarray)]
    for w in written:
        if sum(np.may_share_memory(a, w) for a in arrays) > 1:  # w itself, and nothing else
            raise ValueError("the step's written arrays (inp, out, bias, rows, coef, loss) must not share memory "
                             "with each other or with the arrays it reads")


def warm_up(head, slots: int = 1, subwords: bool = False) -> None:
    """Load the kernel of this head's family from numba's cache (compiled there first, in a child process, if it is
    not: jit_cache.compiled_apart) before training is timed, for examples of `slots` input words, with or without
    subword rows (the loop is compiled for each kind: update.Params.rows_in)."""
    family, tab, width = tables(head)
    # the head's dim: the kernel compiled for it (step's `fixed`)
    emb, vec = np.zeros((1, head.weight.shape[1]), dtype=np.float32), np.zeros(1, dtype=np.float32)
    one = np.zeros(1, dtype=np.int64)
    ctx = np.zeros((1, slots), dtype=np.int64)
    subs = (np.array([0, 1]), np.zeros(1, np.int64)) if subwords else (WORDS_ONLY, WORDS_ONLY)  # word 0: row 0
    step(family, emb, emb.copy(), vec.copy(), ctx, np.ones((1, slots), dtype=np.bool_), one,
         np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32), vec.copy(), 0.0, True,
         tab._replace(shift=vec, prob=np.ones(1, np.float32), alias=one, entries=one, offsets=np.zeros(2, np.int64)), 1,
         subwords=subs, apart=True)
