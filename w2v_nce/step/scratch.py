"""Each thread's working memory for update.py's loops: its hidden vector, gradient, scores and flags, and for hs its
copy of the rows nearest the root, made once a kernel call for all threads (scratch) and viewed per thread
(of_thread)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .kernel import TREE
from .native import inline

LANES = 16  # the logistic terms of hs's path, the exponentials of a softmax: taken this many at a time, a vector
TOP_NODES = 256  # hs: the inner nodes nearest the root, whose changes each thread holds apart


class Scratch(NamedTuple):
    """One thread's working memory."""
    hidden: np.ndarray  # (D,) float32: the hidden vector (cbow's mean; sg reads its context row itself)
    grad: np.ndarray  # (D,) float32: the gradient of the hidden vector
    deltas: np.ndarray  # (C',) float32: an example's scores (C' = C rounded up to LANES: hs's _lanes reads past C)
    acc: np.ndarray  # (D,) float32: the gradient waiting for the carried input word's rows (carry_input)
    kept: np.ndarray  # (C,) bool: which of an example's candidates are terms of the loss (hs: which have label 1)
    mine: np.ndarray  # (TOP_NODES, D) float32: hs's copy of the top rows (empty for the other heads)
    base: np.ndarray  # (TOP_NODES, D) float32: those rows as the thread took them
    top: int  # the first of the top rows (the number of output rows where there is no copy)
    hinges: np.ndarray  # (C',) float32 each: hs's loss terms apart (_lanes)
    qs: np.ndarray
    ahead: np.ndarray  # (C',) float32: skip-gram's hs, the next example's scores, taken in this one's updates


def scratch(threads: int, dim: int, width: int, out: np.ndarray, source: int):
    """Each thread's hidden vector, gradient, scores and carried gradient, 128 bytes apart from the next thread's (two
    threads writing one cache line made some runs twice as slow), its candidates' flags, and for hs its copy of the
    top rows: as arrays with a thread each, (rowwise (T, 3D + 4C' + 32) with C' = C rounded up to LANES, kept (T,
    C + 128), copies, bases (T, n_top, D + 32), top), which `of_thread` views for thread t."""
    top = out.shape[0] - min(TOP_NODES, out.shape[0]) if source == TREE else out.shape[0]
    copies = np.empty((threads, out.shape[0] - top, dim + 32), dtype=np.float32)
    return (np.zeros((threads, 3 * dim + 4 * span(width) + 32), dtype=np.float32),
            np.zeros((threads, width + 128), np.bool_), copies, np.empty_like(copies), top)


@inline
def of_thread(shared, t, dim, width):
    """Thread t's Scratch of the arrays `scratch` made."""
    rowwise, kept, copies, bases, top = shared
    c = span(width)
    return Scratch(rowwise[t, :dim], rowwise[t, dim:2 * dim], rowwise[t, 2 * dim:2 * dim + c],
                   rowwise[t, 2 * dim + c:3 * dim + c], kept[t], copies[t], bases[t], top,
                   rowwise[t, 3 * dim + c:3 * dim + 2 * c], rowwise[t, 3 * dim + 2 * c:3 * dim + 3 * c],
                   rowwise[t, 3 * dim + 3 * c:3 * dim + 4 * c])


@inline
def span(width):  # width rounded up to a whole number of LANES
    return -(-width // LANES) * LANES
