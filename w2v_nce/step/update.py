"""word2vec's per-example update, compiled for the CPU with numba: one loop per family of heads (heads.py), run by one
thread over a range of a batch's examples. cpu.py splits a batch among threads with these loops, pieces.py trains
pieces of the corpus with them, and cuda.py runs the same loops as CUDA kernels, from kernel.py's shared math.

One loop per family, as word2vec.c's hierarchical softmax and negative sampling loops are one:
  h = the context word's input row (sg) or the mean of the context rows (cbow)
  logistic (neg, nce, hs): for each candidate r of the example, in order: Δ = <out_r, h> + b_r + shift,
      c = -lr dL/dΔ; grad += c out_r; then out_r += c h (every Δ is taken first: the same result, as a path's
      nodes are distinct, and a sampled row that an earlier candidate has is scored again; the independent
      scores overlap in the core; hs's path takes every term's logistic next, LANES at a time: rows.logistic_lanes)
  softmax (infonce, sampled-softmax): every Δ first (their exponentials LANES at a time), then for each candidate
      c = -lr (softmax_r - [r is the target]); grad += c out_r; out_r += c h
  every context row (cbow) or the centre row (sg) += grad: the full gradient, word2vec's CBOW rule.
The difference from the PyTorch step is when rows change: here after each example, there after each batch. The
biases (word2vec has none) are summed over the batch and applied at its end: the biases of the most frequent words
share a cache line, which two threads writing it for every example kept taking from each other.

hs's path, and each thread's copy of the nodes nearest the root, are paths.py's; one row's arithmetic is rows.py's.

The length of the rows: a loop given `fixed`, a tuple of dim zeros, is compiled for that dim (numba types a tuple
by its length), so its loops over a row have a constant trip count, unrolled and vectorised whole; dims below
FIXED_FROM (the tests') and above numba's longest tuple in a parallel region (fixed_for) share one kernel that reads
the length. The loops prefetch the next example's output rows (_touch): the step waits on memory, not on arithmetic.
With --shared-noise N, N consecutive examples share one draw of noise words, so that each noise row is fetched from
memory once for them (or those Batch.first names).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .kernel import LOGISTIC_TREE, NOISE, TINY, candidate_function, draw_function
from .inputs import add_row, example_done, example_input, flush, hidden_of, own_row
from .native import float32_bits, inline, numba, prefetch, unaliased
from .paths import SYNC, path_example as _path_example, sync as _sync
from .rows import cpu_exp32 as _exp32, cpu_log32 as _log32, cpu_logistic as _logistic  # noqa: F401 (_exp32: the tests')
from .rows import dot as _dot, exp_lanes as _exps, update_row as _update
from .scratch import LANES, TOP_NODES  # noqa: F401 (TOP_NODES: the tests read it here)

FIXED_FROM = 50  # rows of this many dims or more get a kernel compiled for their length


CONSECUTIVE = np.zeros(1, dtype=np.int64)  # Batch.first where consecutive examples share their draws
WORDS_ONLY = np.zeros(1, dtype=np.int64)  # Params' subword arrays where a word's input vector is its own row
OWN_ROWS, ANY_ROWS = np.zeros(1, dtype=np.int8), np.zeros((1, 1), dtype=np.int8)  # Params.rows_in
OWN = OWN_ROWS.ndim  # the loops' test `rows_in.ndim == OWN`: a module's constant is settled as they compile too


class Params(NamedTuple):
    """The model's arrays the kernels train in place, and which input rows make a word's vector."""
    inp: np.ndarray  # (V + buckets, D) float32: the input vectors (words', then subword n-grams')
    out: np.ndarray  # (R, D) float32: the output rows (a word each, or hs's inner nodes)
    bias: np.ndarray  # (R,) float32
    # subwords (model/word2vec.py): (V+1,) and (N,) int64, word w's input rows sub_rows[sub_offsets[w]:...[w+1]];
    # WORDS_ONLY (one element) each: a word's row is its own
    sub_offsets: np.ndarray = WORDS_ONLY
    sub_rows: np.ndarray = WORDS_ONLY
    # OWN_ROWS where each example's input is one word's own row (skip-gram without subwords: own_rows), else
    # ANY_ROWS: told apart by their number of dimensions, a constant of the compiled loops rather than a value they
    # test, so that those runs' loops read and change the row in place with no branch on it (1.2-1.3x sg's words/s;
    # docs/benchmarks-log.md section 21), and a run compiles the loops of its kind only (the loops take it as an
    # argument of its own: logistic_range). (A tuple, as `fixed` is, cannot be a field here: numba's parallel regions
    # take no tuple inside a named tuple.)
    rows_in: np.ndarray = ANY_ROWS


def own_rows(params: Params, slots: int) -> Params:
    """params with rows_in set for examples of `slots` input words (1: skip-gram, 2W: CBOW)."""
    return params._replace(rows_in=OWN_ROWS if slots == 1 and len(params.sub_offsets) == 1 else ANY_ROWS)


def params_of(model) -> Params:
    """The kernels' view of a model's tensors (which train in place)."""
    head, subs = model.head, model.sub_offsets is not None
    return Params(model.input.numpy(), head.weight.numpy(), head.bias.numpy(),
                  model.sub_offsets.numpy() if subs else WORDS_ONLY, model.sub_rows.numpy() if subs else WORDS_ONLY)


class Batch(NamedTuple):
    """Examples to train, and what the kernel writes of each."""
    ctx: np.ndarray  # (B, S) int64: the context words, S = 1 (sg: the context word itself) or 2W (cbow)
    valid: np.ndarray  # (B, S) bool: which slots are real
    targets: np.ndarray  # (B,) int64: the centre words
    rows: np.ndarray  # (B, C) int64: each example's candidates (written)
    coef: np.ndarray  # (B, C) float32: -lr dL/dΔ of each, 0 where skipped (written; the biases read it)
    loss: np.ndarray  # (B,) float32: each example's loss, or the probe: 0, NaN if a score is not finite (written)
    # (B,) int64: the example (itself or an earlier one) whose noise draw each shares, or CONSECUTIVE: _first
    first: np.ndarray = CONSECUTIVE


def fixed_for(dim: int) -> tuple:
    """The `fixed` a kernel takes for rows of this dim (the module docstring): its own kernel from FIXED_FROM dims up
    to the longest tuple numba passes into a parallel region (NUMBA_PARFOR_MAX_TUPLE_SIZE, 100 unless set), where a
    longer one fails to compile (--dim 101 and above did, the step's threads being such a region); above that the
    kernel that reads the length, as fast at dim 300 and compiled in half the time (docs/benchmarks-log.md
    section 29)."""
    longest = numba.config.PARFOR_MAX_TUPLE_SIZE if numba else dim
    return (0,) * dim if FIXED_FROM <= dim <= longest else ()


# kernel.py's functions compiled for the CPU (cuda.py compiles them for the GPU)
@inline
def _packed_entry(prob, entries, col):
    """Column col of the CPU's alias table (Tables.entries): its probability and its alias, from one int64."""
    e = entries[col]
    return float32_bits(np.int32(e & np.int64(0xFFFFFFFF))), e >> np.int64(32)


_noise = inline(draw_function(_packed_entry))  # noise draws reading Tables.entries: one load of the table a draw
_candidate = numba.njit(inline="always")(candidate_function(_noise)) if numba else candidate_function(_noise)


@inline
def _score(out, bias, r, shift, h, fixed):
    """Δ of output row r for the hidden vector h: <out_r, h> + b_r + its shift (nce's -log k q(r), else 0)."""
    return bias[r] + shift + _dot(out[r], h, fixed)


@inline
def add_biases(bias, rows, coef):
    """The biases are updated at the end of the batch, not per example: the biases of the most frequent
    words share a cache line, and two threads writing it per example made the step 3x slower."""
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            bias[rows[i, j]] += coef[i, j]


@inline
def _first(first, i, share):
    """The example whose noise draw example i shares: the first of its N consecutive ones, or where the examples'
    maker chose (Batch.first; pieces.share_across: other centres', for skip-gram's pairs made (centre, context))."""
    return first[i] if len(first) > 1 else i - i % share


@inline
def _touch(out, rows, targets, e, width, source, seed, prob, entries, fresh, hot, hot_at):
    """Prefetch every cache line of example e's output rows (its target and noise words), so that they arrive while
    the core works on the examples before e: the step is bound by memory latency, and without it each noise row is
    a miss that its example waits for. A prefetch, not a load: a load that nothing waits on still holds up the
    retiring of everything after it until its line arrives. The noise words drawn for it are kept in rows[e]
    (rows: (B, C), the batch's), where e's loop reads them (_draw) rather than draw them again: a draw is a hash
    and two reads of the alias table at a random column, a miss of the L1 cache in CBOW, whose examples share no
    draw (docs/benchmarks-log.md section 22). hs prefetches nothing: its upper nodes are in cache, and prefetching
    its paths was slower."""
    if source != NOISE:
        return
    _prefetch_row(out, targets[e])
    if not fresh:  # shared draws: prefetched with the first example that draws them
        return
    for j in range(1, width):
        r = _copy_of(_noise(seed, e * width + j, prob, entries), hot, hot_at)
        rows[e, j] = r
        _prefetch_row(out, r)


@inline
def _prefetch_row(out, r):
    for d in range(0, out.shape[1], 16):  # 16 float32s a 64-byte cache line
        prefetch(out, r, d)


@inline
def _draw(rows, i, first, start, j, width, target, seed, tab):
    """_candidate of example i (rows: (B, C), the batch's; this thread's examples begin at start): a noise word that
    this thread has drawn already is read from rows[first] (first: the first example of i's shared draw), not
    drawn again. It has when an earlier example of the draw was this thread's (first in [start, i)), or when _touch
    drew them for example first (tab.ahead examples after start or later)."""
    drawn = first >= start and (first < i or (tab.ahead > 0 and first >= start + tab.ahead))
    if tab.source == NOISE and j > 0 and drawn:
        r = rows[first, j]
        return r, False, tab.shift[r], not (tab.drop_hits and r == target)
    r, positive, s, used = _candidate(first, j, width, target, tab.source, seed, tab.shift, tab.prob, tab.entries,
                                      tab.drop_hits, tab.offsets, tab.points, tab.codes)
    if tab.source == NOISE and j > 0 and r < tab.hot:  # the thread's copy (its shift the word's)
        r += tab.hot_at
        used = not (tab.drop_hits and r == target)
    return r, positive, s, used


@inline
def _copy_of(r, hot, at):
    """The row of noise word r this thread trains: its own copy of a hot word's (copies.py), else r."""
    return r + at if r < hot else r


@inline
def _noise_example(out, bias, h, grad, target, i, first, start, rows, coef, deltas, kept, lr, need_loss, seed, tab,
                   width, fixed):
    """The logistic loss of example i over its target and noise words (candidate 0 the target, label 1; the rest
    label 0), each row updated in order right after its score; returns the example's loss. Every score is taken
    first: the rows are distinct but for a noise word drawn twice (or the target drawn), so the scores do not
    depend on each other and the core overlaps them, where one after another each waited on the last's update
    (docs/benchmarks-log.md section 22). A row that an earlier candidate of the example has (and may have updated)
    is scored again just before its own term: the sequential loop's result to the bit. rows: (B, C), the batch's
    (this thread's examples begin at start: _draw reads the noise words drawn already there, at first: _first)."""
    for j in range(width):
        r, positive, s, used = _draw(rows, i, first, start, j, width, target, seed, tab)
        rows[i, j], kept[j] = r, used
        if used:
            deltas[j] = _score(out, bias, r, s, h, fixed)
    total = np.float32(0.0)
    prod = 1.0  # float64: the product of the terms' q (logistic)
    for j in range(width):
        if not kept[j]:
            continue
        r, delta = rows[i, j], deltas[j]
        for e in range(j):
            if rows[i, e] == r:  # the same row as an earlier candidate: its score after that one's update
                delta = _score(out, bias, r, tab.shift[r], h, fixed)
                break
        g, hinge, q = _logistic(delta, j == 0, need_loss)
        total += hinge
        prod *= q
        if abs(g) < TINY:
            continue
        c = -lr * g
        _update(out[r], h, grad, c, fixed)
        coef[j] = c
        if tab.learn_bias and tab.bias_now:
            bias[r] += c
    return total - _log32(np.float32(prod))


@unaliased
def logistic_range(params, batch, tab, kind, rows_in, lr, need_loss, seed, fixed, i0, i1, scratch, several):
    """The logistic loop over examples [i0, i1), in order, by one thread (`several`: others run beside it); hs's top
    rows in this thread's copy (taken at the start, given every SYNC examples when `several`, and at the end). kind
    and rows_in: tab.kind and params.rows_in, given apart because numba settles a branch as it compiles only on the
    number of dimensions of an argument itself: the loop of a run's kind is compiled, not every kind's (a first
    compile of sg-neg 19 s with pieces._block's size typed once, not 65 s; docs/benchmarks-log.md section 31)."""
    out, bias = params.out, params.bias
    ctx, valid, targets, rows, coef, loss = batch.ctx, batch.valid, batch.targets, batch.rows, batch.coef, batch.loss
    hidden, grad, mine, base, top = scratch.hidden, scratch.grad, scratch.mine, scratch.base, scratch.top
    width = rows.shape[1]
    carry, word, gain = len(params.sub_offsets) > 1 and ctx.shape[1] == 1, np.int64(-1), np.float32(1.0)
    _sync(out, top, mine, base, False)
    scored = False  # whether the example's scores were taken in the last one's updates (_path_example)
    for i in range(i0, i1):
        if several and (i - i0) % SYNC == SYNC - 1:
            _sync(out, top, mine, base, True)  # give the changes, take the others'
        if tab.ahead and i + tab.ahead < i1:
            e = i + tab.ahead
            _touch(out, rows, targets, e, width, tab.source, seed, tab.prob, tab.entries,
                   _first(batch.first, e, tab.share) == e, tab.hot, tab.hot_at)
        if tab.learn_bias and not tab.bias_now:  # the biases read every coefficient of the batch (buffers reused)
            coef[i, :] = np.float32(0.0)
        if rows_in.ndim == OWN:  # the inputs are the words' own rows, in place
            h = own_row(params, grad, ctx, i, fixed)
        elif carry:
            h, word, gain = example_input(params, hidden, grad, scratch.acc, ctx, valid, i, carry, word, gain, fixed)
        else:
            h = hidden_of(hidden, grad, params, ctx, valid, i, fixed)
        if kind.ndim == LOGISTIC_TREE:  # numba compiles the branch of the run's kind only (kernel.Tables.kind)
            # skip-gram's next pair of the same centre (the same path) and another context word: its scores taken in
            # this example's updates, unless the rows are synchronised between them
            e = i + 1
            fuse = (rows_in.ndim == OWN and e < i1 and targets[e] == targets[i] and ctx[e, 0] != ctx[i, 0]
                    and not (several and (e - i0) % SYNC == SYNC - 1))
            nxt = params.inp[ctx[e, 0]] if fuse else h
            loss[i] = _path_example(out, bias, mine, top, h, grad, targets[i], rows[i], coef[i], scratch, lr, need_loss,
                                    tab.offsets, tab.points, tab.codes, fixed, scored, nxt, fuse)
            scored = fuse
        else:
            loss[i] = _noise_example(out, bias, h, grad, targets[i], i, _first(batch.first, i, tab.share), i0, rows,
                                     coef[i], scratch.deltas, scratch.kept, lr, need_loss, seed, tab, width, fixed)
        if rows_in.ndim == OWN:  # the inputs are the words' own rows, in place
            add_row(h, grad, fixed)
        else:
            example_done(params, h, grad, scratch.acc, ctx, valid, i, carry, gain, fixed)
    if carry and word >= 0:
        flush(params, word, scratch.acc, fixed)
    _sync(out, top, mine, base, True)


@unaliased
def softmax_range(params, batch, tab, rows_in, lr, need_loss, seed, fixed, i0, i1, scratch):
    """The softmax loop over examples [i0, i1), in order, by one thread (rows_in: as logistic_range's)."""
    out, bias = params.out, params.bias
    ctx, valid, targets, rows, coef, loss = batch.ctx, batch.valid, batch.targets, batch.rows, batch.coef, batch.loss
    hidden, grad, deltas, kept = scratch.hidden, scratch.grad, scratch.deltas, scratch.kept
    width = rows.shape[1]
    carry, word, gain = len(params.sub_offsets) > 1 and ctx.shape[1] == 1, np.int64(-1), np.float32(1.0)
    for i in range(i0, i1):
        if tab.ahead and i + tab.ahead < i1:
            e = i + tab.ahead
            _touch(out, rows, targets, e, width, tab.source, seed, tab.prob, tab.entries,
                   _first(batch.first, e, tab.share) == e, tab.hot, tab.hot_at)
        if tab.learn_bias and not tab.bias_now:  # the biases read every coefficient of the batch (buffers reused)
            coef[i, :] = np.float32(0.0)
        if rows_in.ndim == OWN:  # the inputs are the words' own rows, in place
            h = own_row(params, grad, ctx, i, fixed)
        elif carry:
            h, word, gain = example_input(params, hidden, grad, scratch.acc, ctx, valid, i, carry, word, gain, fixed)
        else:
            h = hidden_of(hidden, grad, params, ctx, valid, i, fixed)
        top, first = np.float32(-np.inf), _first(batch.first, i, tab.share)
        for j in range(width):  # every score first: each gradient needs the softmax of all of them
            r, positive, s, used = _draw(rows, i, first, i0, j, width, targets[i], seed, tab)
            rows[i, j], kept[j] = r, used
            if used:
                deltas[j] = _score(out, bias, r, s, h, fixed)
                top = max(top, deltas[j])
        z, target = np.float32(0.0), deltas[0]
        for j0 in range(0, width, LANES):  # kept for the gradients: one exp a candidate, LANES at a time
            _exps(deltas, j0, top)
        for j in range(width):  # summed in order: the same sum to the bit as one candidate after another
            if kept[j]:
                z += deltas[j]
        term = top + _log32(z) - target  # -log softmax of the target (candidate 0)
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
            if tab.learn_bias and tab.bias_now:
                bias[rows[i, j]] += c
        if rows_in.ndim == OWN:  # the inputs are the words' own rows, in place
            add_row(h, grad, fixed)
        else:
            example_done(params, h, grad, scratch.acc, ctx, valid, i, carry, gain, fixed)
    if carry and word >= 0:
        flush(params, word, scratch.acc, fixed)
