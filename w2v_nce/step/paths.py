"""hs's path in the CPU's per-example loop (update.logistic_range): an example's loss over its target's Huffman path,
and each thread's copy of the nodes nearest the root.

In hs every example updates the root and the nodes below it, whose cache lines two threads kept taking from each
other: each thread works on its own copy of the TOP_NODES nodes nearest the root and every SYNC examples gives its
changes to the shared rows and takes the others' (sync).
"""

from __future__ import annotations

import numpy as np

from .native import inline
from .rows import (cpu_log32 as _log32, dot as _dot, logistic_lanes as _lanes, update_row as _update,
                   update_row_dot as _update_dot, update_two as _update2, update_two_dots as _update2_dots)
from .scratch import LANES, span as _span

SYNC = 1024  # hs with several threads: each gives its changes to those rows and takes the others' every SYNC examples


@inline
def path_example(out, bias, mine, top, h, grad, target, rows, coef, scratch, lr, need_loss, offsets, points, codes,
                  fixed, scored, nxt, fuse):
    """The hs loss over the target's path: every score first, then every term's logistic, then every update. A path's
    nodes are distinct and h is fixed within the example, so this is the sequential loop's result; but the scores,
    independent of each other, overlap in the core, and the logistics are taken LANES at a time, each operation one
    vector instruction for all of them (_lanes). Nodes at or above `top` are read and written in mine[r - top], this
    thread's copy of those rows. Returns the example's loss; coef holds the coefficients.
    With `fuse`, the next example has this path too and another input row, nxt (skip-gram's next pair of the same
    centre): each row's score for it is taken in this example's update of the row, while the row is in registers
    (_update2_dots), into scratch.ahead, where that example reads them (`scored`) rather than load every row again
    for them: the same scores, on the rows as this example left them (sg-hs 1.12x words/s, the median of seven
    alternated rounds; docs/benchmarks-log.md section 31)."""
    deltas, positive, hinges, qs, ahead = scratch.deltas, scratch.kept, scratch.hinges, scratch.qs, scratch.ahead
    p0 = offsets[target]
    m = offsets[target + 1] - p0
    for j in range(m):
        r = points[p0 + j]
        rows[j] = r
        positive[j] = codes[p0 + j] == 0
        deltas[j] = ahead[j] if scored else bias[r] + _dot(_node(out, mine, top, r), h, fixed)
    for j in range(m, _span(m)):  # the last block's lanes past the path: finite, never used
        deltas[j] = np.float32(0.0)
    for j0 in range(0, m, LANES):
        _lanes(deltas, positive, hinges, qs, j0, lr, need_loss)
    total, prod = np.float32(0.0), 1.0
    for j in range(m):
        total += hinges[j]
        prod *= qs[j]
        coef[j] = deltas[j]
    if fuse:  # the next example's input nxt: its scores on each row as updated, while the row is at hand
        for j in range(0, m - 1, 2):
            r, s = rows[j], rows[j + 1]
            ahead[j], ahead[j + 1] = _update2_dots(_node(out, mine, top, r), _node(out, mine, top, s), h, grad,
                                                   coef[j], coef[j + 1], nxt, fixed)
            ahead[j] += bias[r]
            ahead[j + 1] += bias[s]
        if m % 2:
            r = rows[m - 1]
            ahead[m - 1] = bias[r] + _update_dot(_node(out, mine, top, r), h, grad, coef[m - 1], nxt, fixed)
        return total - _log32(np.float32(prod))
    a = -1  # the node waiting for a second: the updates go two nodes at a time (_update2)
    for j in range(m):
        if coef[j] == np.float32(0.0):
            continue
        if a < 0:
            a = j
            continue
        r, s = rows[a], rows[j]
        _update2(_node(out, mine, top, r), _node(out, mine, top, s), h, grad, coef[a], coef[j], fixed)
        a = -1
    if a >= 0:
        r = rows[a]
        _update(_node(out, mine, top, r), h, grad, coef[a], fixed)
    return total - _log32(np.float32(prod))


@inline
def _node(out, mine, top, r):
    """hs's inner node r: its row in this thread's copy of the top rows (mine) where r >= top, else in out."""
    return mine[r - top] if r >= top else out[r]


@inline
def sync(out, top, mine, base, give):
    """hs's copy of the top rows (module docstring): with `give`, add its changes since it was taken (mine - base) to
    the shared rows; then take the shared rows, the other threads' changes given so far included, as mine and base."""
    for q in range(mine.shape[0]):
        row = out[top + q]
        for d in range(row.shape[0]):
            value = row[d] + (mine[q, d] - base[q, d]) if give else row[d]
            row[d] = value
            mine[q, d] = value
            base[q, d] = value
