"""Training examples: sub-sampling, word2vec's dynamic window, skip-gram pairs and CBOW contexts.

The random draws (which words sub-sampling keeps, each centre's window) are tensor ops on the training device, over
a chunk of the encoded corpus at a time. The pairs and contexts are assembled from them by tensor ops on a GPU, and
on the CPU by one compiled pass (numba), which gives the same tensors: the tensor ops build a (words, 2W) table
of positions and masks and make several passes over it, slower on the CPU than one pass.
Windows never cross a line break (SEPARATOR) and, since chunks are processed independently, not a
chunk boundary either: with 1M-token chunks that drops about window/1M of the pairs.
"""

from __future__ import annotations

from .. import jit_cache  # noqa: F401 (before any kernel: numba's cache keyed to every file a kernel reaches)

import numpy as np
import torch

from .vocab import SEPARATOR

try:
    import numba
except ImportError:  # the tensor ops serve the CPU too
    numba = None


def subsample(ids: torch.Tensor, keep: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each word with probability 1 - keep[w]; separators always stay. ids: (L,) int64."""
    words = ids.clamp_min(0)
    coin = torch.rand(ids.shape, device=ids.device, generator=generator)  # (L,)
    return ids[(ids == SEPARATOR) | (coin < keep[words])]


def split_lines(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove separators; return the words and, for each, the index of the line it is on (int32)."""
    is_sep = ids == SEPARATOR
    line = torch.cumsum(is_sep, 0, dtype=torch.int32)  # (L,)
    return ids[~is_sep], line[~is_sep]


def draw_windows(n: int, window: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """word2vec's dynamic window: an effective window drawn uniformly from 1..window per centre word."""
    return torch.randint(1, window + 1, (n,), device=device, generator=generator)


def context_table(words: torch.Tensor, lines: torch.Tensor, eff: torch.Tensor, window: int):
    """For each centre i and offset o in -W..-1, 1..W: the context position and whether it is valid.

    Valid means |o| <= eff[i], inside the chunk and on the same line. Returns (pos (L, 2W), valid (L, 2W)).
    Positions are int32: the (L, 2W) tables are the largest allocations of training.
    """
    n = len(words)
    device = words.device
    offsets = torch.cat([torch.arange(-window, 0), torch.arange(1, window + 1)]).to(device, torch.int32)
    idx = torch.arange(n, device=device, dtype=torch.int32)  # (L,)
    eff = eff.to(torch.int32)  # int32 throughout: mixed types make every op convert
    # lines is non-decreasing, so a line is a run of equal values: the valid positions for centre i are
    # the interval [lo_i, hi_i], two compares per slot instead of gathering the line of every slot
    _, counts = torch.unique_consecutive(lines, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.int32)
    lo = torch.maximum(idx - eff, torch.repeat_interleave(ends - counts.to(torch.int32), counts))  # (L,)
    hi = torch.minimum(idx + eff, torch.repeat_interleave(ends - 1, counts))  # (L,)
    pos = idx[:, None] + offsets[None, :]  # (L, 2W)
    valid = (pos >= lo[:, None]) & (pos <= hi[:, None])
    pos.clamp_(0, max(n - 1, 0))
    return pos, valid


def skipgram_pairs(words, lines, eff, window, centre_in: bool = False):
    """Skip-gram examples as (input, target) = (context word, centre word), centre by centre in corpus order; with
    centre_in, (centre word, context word) (model/word2vec.centre_input says when).

    The direction word2vec.c and gensim train in: a centre's examples share its output row (updated once per
    context, in a row) and update each context word's input row once. With the centre as the input, the
    centre's input row took its 2W updates in a row, and the analogies scored lower. The pairs themselves are the
    same either way: the windows are symmetric."""
    if _compiled(words):
        n = len(words)
        contexts, centres = np.empty((2 * window * n, 1), np.int64), np.empty(2 * window * n, np.int64)
        p = _examples(words.numpy(), lines.numpy(), eff.numpy().astype(np.int64, copy=False), window, contexts,
                      np.ones((1, 1), np.bool_), centres, centre_in)
        return torch.from_numpy(contexts[:p, 0]), torch.from_numpy(centres[:p])
    pos, valid = context_table(words, lines, eff, window)
    slot = valid.view(-1).nonzero().squeeze(1)  # (P,) the valid slots of the flattened (L, 2W) table
    # index_select: faster than boolean masks and fancy indexing on the CPU
    centres = words.index_select(0, slot // (2 * window))  # (P,)
    contexts = words.index_select(0, pos.view(-1).index_select(0, slot))  # (P,)
    return (centres, contexts) if centre_in else (contexts, centres)


def cbow_examples(words, lines, eff, window):
    """CBOW examples: context ids (N, 2W) with a validity mask, and the centre word as target (N,).

    Centres with no valid context (a one-word line) are dropped.
    """
    if _compiled(words):
        n = len(words)
        ctx, valid = np.empty((n, 2 * window), np.int64), np.empty((n, 2 * window), np.bool_)
        centres = np.empty(n, np.int64)
        eff = eff.numpy().astype(np.int64, copy=False)
        m = _examples(words.numpy(), lines.numpy(), eff, window, ctx, valid, centres, False)
        return tuple(torch.from_numpy(a[:m]) for a in (ctx, valid, centres))
    pos, valid = context_table(words, lines, eff, window)
    centres = words
    has = valid.any(1)
    if not bool(has.all()):
        pos, valid, centres = pos[has], valid[has], words[has]
    # pos indexes the chunk's words, not the kept centres
    return words.index_select(0, pos.view(-1)).view(pos.shape), valid, centres


# -- the compiled pass on the CPU: the same tensors as the tensor ops above, in one pass over the chunk --------------

def _compiled(words: torch.Tensor) -> bool:
    return numba is not None and words.device.type == "cpu"


def slot(i, s, window, eff, lines, n):
    """Slot s of centre i (the offsets -W..-1, 1..W in the table's order): the position, clamped into the chunk,
    and whether it is in the window: |offset| <= the centre's drawn window, inside the chunk, on its line.
    Without branches: the short-circuit form made the CBOW pass much slower."""
    o = s - window if s < window else s - window + 1
    p = i + o
    q = min(max(p, 0), n - 1)
    return q, (abs(o) <= eff[i]) & (p >= 0) & (p < n) & (lines[q] == lines[i])


def emit(i, n, window, eff, lines, words, m, ctx, valid, targets, centre_in):
    """Centre i's examples into rows n on (words, lines, eff: m kept tokens, their lines and drawn windows): skip-gram
    (ctx with one slot) its pairs (context, centre) in the window's order (centre_in: (centre, context)), CBOW one
    example of its context slots and
    their validity (none if no slot is valid: a one-word line; a slot outside the window holds the word at the
    clamped position, as the tensor ops leave it). Returns the next free row. The chunk loop's passes below and the
    pieces' loop (step/pieces.py) make their examples with it."""
    if ctx.shape[1] == 1:
        for s in range(2 * window):
            q, ok = slot(i, s, window, eff, lines, m)
            if ok:
                ctx[n, 0], targets[n] = (words[i], words[q]) if centre_in else (words[q], words[i])
                n += 1
        return n
    used = False
    for s in range(2 * window):
        q, ok = slot(i, s, window, eff, lines, m)
        ctx[n, s], valid[n, s] = words[q], ok
        used |= ok
    if used:
        targets[n] = words[i]
        n += 1
    return n


def _examples_loop(words, lines, eff, window, ctx, valid, targets, centre_in):
    """Every centre's examples (emit) into ctx, valid and targets; returns how many."""
    n, m = 0, len(words)
    for i in range(m):
        n = emit(i, n, window, eff, lines, words, m, ctx, valid, targets, centre_in)
    return n


if numba is not None:
    slot = numba.njit(inline="always", cache=True)(slot)
    emit = numba.njit(inline="always", cache=True)(emit)
    _examples = numba.njit(cache=True, nogil=True)(_examples_loop)
