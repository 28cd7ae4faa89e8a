"""One row's arithmetic in the CPU's per-example loops (update.py, paths.py): dot products, the updates of an output row
and the hidden vector's gradient, and the logistic terms and exponentials taken LANES at a time. Each is copied into
the loop that calls it (inline), where the row's length is a constant when the loop is compiled for it (`fixed`)."""

from __future__ import annotations

import numpy as np

from .fastmath import exp32, log32
from .inputs import dims
from .kernel import TINY, logistic_function
from .native import inline
from .scratch import LANES

cpu_exp32 = inline(exp32)
cpu_log32 = inline(log32)
cpu_logistic = inline(logistic_function(cpu_exp32))


@inline
def dot(o, h, fixed):
    total = np.float32(0.0)
    for d in range(dims(fixed, h)):
        total += o[d] * h[d]
    return total


@inline
def update_row(o, h, grad, c, fixed):
    """grad += c out_r, with the row before its update (as the gradient needs); then out_r += c h."""
    for d in range(dims(fixed, h)):
        grad[d] += c * o[d]
        o[d] += c * h[d]


@inline
def update_two(o, p, h, grad, c, e, fixed):
    """update_row of two distinct rows, o then p, in one pass: grad read and written once for both."""
    for d in range(dims(fixed, h)):
        g = grad[d] + c * o[d]
        grad[d] = g + e * p[d]
        o[d] += c * h[d]
        p[d] += e * h[d]


@inline
def update_two_dots(o, p, h, grad, c, e, nxt, fixed):
    """update_two (a coefficient may be 0: then the row is as it was), and each row's dot product with nxt after it."""
    x, y = np.float32(0.0), np.float32(0.0)
    for d in range(dims(fixed, h)):
        od, pd = o[d], p[d]
        grad[d] = (grad[d] + c * od) + e * pd
        od += c * h[d]
        pd += e * h[d]
        o[d], p[d] = od, pd
        x += od * nxt[d]
        y += pd * nxt[d]
    return x, y


@inline
def update_row_dot(o, h, grad, c, nxt, fixed):
    """update_row, and the row's dot product with nxt after it."""
    x = np.float32(0.0)
    for d in range(dims(fixed, h)):
        od = o[d]
        grad[d] += c * od
        od += c * h[d]
        o[d] = od
        x += od * nxt[d]
    return x


@inline
def logistic_lanes(deltas, positive, hinges, qs, j0, lr, need_loss):
    """The logistic terms of scores deltas[j0:j0 + LANES] (label 1 where positive): deltas gets each -lr dL/dΔ (0 below
    TINY), hinges and qs their loss parts. LANES steps with no branch: each operation one vector instruction for every
    lane, where one node after another they were a quarter of hs's time (docs/benchmarks-log.md section 27)."""
    deltas, positive, hinges, qs = deltas[j0:], positive[j0:], hinges[j0:], qs[j0:]
    for j in range(LANES):  # indices the compiler sees are in [0, LANES): no wrap-around of negative ones to test
        g, hinge, q = cpu_logistic(deltas[j], positive[j], need_loss)
        deltas[j] = np.float32(0.0) if abs(g) < TINY else -lr * g
        hinges[j] = hinge
        qs[j] = q


@inline
def exp_lanes(deltas, j0, top):
    """deltas[j] = e^(deltas[j] - top) for j in [j0, j0 + LANES), as logistic_lanes: one vector instruction for every
    lane."""
    deltas = deltas[j0:]
    for j in range(LANES):
        deltas[j] = cpu_exp32(deltas[j] - top)
