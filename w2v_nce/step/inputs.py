"""The input side of an example, for update.py's loops: the hidden vector made from the example's input rows, and the
rows' update after it. Without subwords a word's input vector is its row (skip-gram reads it in place, CBOW averages
its context words'); with subwords each word's rows are its own and its n-grams' (update.Params), and skip-gram's
centre carries its hidden vector over its examples (carry_input).
"""

from __future__ import annotations

import numpy as np

from .native import inline, prefetch


@inline
def dims(fixed, row):
    """The length of the rows: len(fixed), a constant of the compiled kernel, or if fixed is empty the row's."""
    return len(fixed) if len(fixed) else row.shape[0]


@inline
def own_row(params, grad, ctx, i, fixed):
    """grad = 0; returns example i's input row itself (update.Params.rows_in), which gets grad at the example's end
    (add_row). Through hidden_of, whose result is either that row or the scratch vector, skip-gram's loops ran
    1.2-1.3x slower (docs/benchmarks-log.md section 21)."""
    for d in range(dims(fixed, grad)):
        grad[d] = np.float32(0.0)
    return params.inp[ctx[i, 0]]


@inline
def hidden_of(h, grad, params, ctx, valid, i, fixed):
    """grad = 0; returns h, the mean of example i's valid context words' input rows: one a word, or with subwords
    each word's own and its n-grams'. (Skip-gram's words read their row in place instead: own_row. The result is
    always h, never a row: a result that could be either made LLVM's code for every use of it slower.)"""
    inp, offsets, subs = params.inp, params.sub_offsets, len(params.sub_offsets) > 1
    dim = dims(fixed, h)
    for d in range(dim):
        grad[d] = np.float32(0.0)
    for d in range(dim):
        h[d] = np.float32(0.0)
    used, waiting = 0, -1  # words' own rows are added two at a time (add_rows): h read and written once for both
    for s in range(ctx.shape[1]):
        if not valid[i, s]:
            continue
        w = ctx[i, s]
        if subs:
            for p in range(offsets[w], offsets[w + 1]):
                add_row(h, inp[params.sub_rows[p]], fixed)
            used += offsets[w + 1] - offsets[w]
        elif waiting < 0:
            waiting = w
        else:
            add_rows(h, inp[waiting], inp[w], fixed)
            used, waiting = used + 2, -1
    if waiting >= 0:
        add_row(h, inp[waiting], fixed)
        used += 1
    if used > 1:
        scale = np.float32(1.0) / np.float32(used)
        for d in range(dim):
            h[d] *= scale
    return h


@inline
def to_inputs(params, ctx, valid, i, grad, fixed):
    """Every input row of example i gets the hidden vector's full gradient (word2vec's CBOW rule; fastText's for
    every n-gram row)."""
    inp, offsets, subs = params.inp, params.sub_offsets, len(params.sub_offsets) > 1
    for s in range(ctx.shape[1]):
        if not valid[i, s]:
            continue
        w = ctx[i, s]
        if subs:
            for p in range(offsets[w], offsets[w + 1]):
                add_row(inp[params.sub_rows[p]], grad, fixed)
        else:
            add_row(inp[w], grad, fixed)


@inline
def add_row(row, x, fixed):
    """row += x."""
    for d in range(dims(fixed, x)):
        row[d] += x[d]


@inline
def add_rows(row, x, y, fixed):
    """row += x, then row += y, in one pass."""
    for d in range(dims(fixed, x)):
        row[d] = (row[d] + x[d]) + y[d]


@inline
def carry_input(params, h, grad, acc, w, word, gain, fixed):
    """Skip-gram with subwords (model/word2vec.centre_input: a centre's examples in a row share it as their input):
    the hidden vector of input word w and grad = 0. A new word: the waiting gradient given to the last one's rows
    (flush), h made from w's rows and acc = 0; the same word: h as carried left it. Returns (h, w, gain): gain is
    how much h moves for each unit of gradient given to w's rows, sum of each row's count squared over the count of
    rows (1 where no row repeats), so that h is the mean of the rows as they would be with every update made at
    once: fastText's sequential update in exact arithmetic, with w's rows read once and written once."""
    dim = dims(fixed, h)
    for d in range(dim):
        grad[d] = np.float32(0.0)
    if w == word:
        return h, word, gain
    if word >= 0:
        flush(params, word, acc, fixed)
    offsets, rows, inp = params.sub_offsets, params.sub_rows, params.inp
    a, b = offsets[w], offsets[w + 1]
    for d in range(dim):
        h[d] = np.float32(0.0)
        acc[d] = np.float32(0.0)
    same = 0
    for p in range(a, b):
        add_row(h, inp[rows[p]], fixed)
        for q in range(a, b):
            same += rows[q] == rows[p]
    scale = np.float32(1.0) / np.float32(b - a)
    for d in range(dim):
        h[d] *= scale
    return h, w, np.float32(same) * scale


@inline
def carried(h, grad, acc, gain, fixed):
    """After an example of the carried word: its gradient waits in acc, and h moves as its rows would."""
    for d in range(dims(fixed, h)):
        acc[d] += grad[d]
        h[d] += gain * grad[d]


@inline
def flush(params, word, acc, fixed):
    """The carried word's rows each get the gradient waiting in acc."""
    for p in range(params.sub_offsets[word], params.sub_offsets[word + 1]):
        add_row(params.inp[params.sub_rows[p]], acc, fixed)


@inline
def touch_next(params, ctx, i, i1):
    """Prefetch every cache line of the rows of the next input word after example i's (up to i1): the n-gram rows are
    spread over a matrix far larger than the caches, each a miss, which now overlap the carried word's examples
    (skip-gram with subwords, alternated runs: 1.09x the median words/s, 5 rounds of 5; log section 16). A prefetch
    changes no result, and one of a row past the block's examples only costs its fetch."""
    j = i + 1
    while j < i1 and ctx[j, 0] == ctx[i, 0]:
        j += 1
    if j < i1:
        w = ctx[j, 0]
        for p in range(params.sub_offsets[w], params.sub_offsets[w + 1]):
            for d in range(0, params.inp.shape[1], 16):
                prefetch(params.inp, params.sub_rows[p], d)


@inline
def example_input(params, h, grad, acc, ctx, valid, i, carry, word, gain, fixed):
    """Example i's hidden vector, and grad = 0: carried (carry_input: skip-gram with subwords) or made (hidden_of).
    Returns (h, the carried word, its gain). The loops call hidden_of themselves where nothing is carried: through
    this tuple the runs without subwords lost 10-15% of their words/s (log section 16)."""
    if carry:
        if ctx[i, 0] != word:
            touch_next(params, ctx, i, ctx.shape[0])
        return carry_input(params, h, grad, acc, ctx[i, 0], word, gain, fixed)
    return hidden_of(h, grad, params, ctx, valid, i, fixed), word, gain


@inline
def example_done(params, h, grad, acc, ctx, valid, i, carry, gain, fixed):
    """After example i: its gradient to its input rows (to_inputs), or waiting for the carried word's (carried)."""
    if carry:
        carried(h, grad, acc, gain, fixed)
    else:
        to_inputs(params, ctx, valid, i, grad, fixed)
