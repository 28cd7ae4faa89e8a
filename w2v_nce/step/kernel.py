"""The math of one example that both compiled kernels run, the CPU's (update.py) and the GPU's (cuda.py), and the
description of a head they read (Tables).

A head's candidates for an example come from one of two sources: the target and k noise words drawn from the
unigram^p alias table (neg, nce, infonce, sampled-softmax), or the inner nodes on the target's Huffman path (hs).
The noise words are draws of a counter-based hash (splitmix64) of one seed a batch: they depend on the seed and the
example's place in the batch, not on the thread or warp that trains it.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch

from ..model.heads import EXACT, LOGISTIC, HSHead

NOISE, TREE = 0, 1  # where an example's candidates come from: noise draws, or the target's Huffman path
# |dL/dΔ| below this is skipped: the change it would make, at most lr·1e-6·|h_d| per weight, is at the float32
# rounding step of the weights, and late epochs slowed down on denormal numbers from saturated scores without a cut
TINY = 1e-6
AHEAD = 1  # the CPU kernels prefetch the output rows of the example this many ahead
# A head's kind for the CPU's loops (Tables.kind): the number of dimensions of a one-element array, a constant of the
# compiled loops rather than a value they test, as Params.rows_in is, so that numba compiles the loop of a run's
# kind only (update.logistic_range): a first run's compile of sg-neg 19 s, not 65 s (docs/benchmarks-log.md
# section 31)
LOGISTIC_NOISE, LOGISTIC_TREE, SOFTMAX_NOISE = 1, 2, 3


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
    ahead: int = AHEAD  # the CPU kernels prefetch the output rows of the example this many ahead; 0: none
    hot: int = 0  # the CPU's pieces: output rows below this have a copy of the thread's (copies.py; 0: none)
    hot_at: int = 0  # and the thread's copy of row r is row hot_at + r
    # (V,) int64: the alias table packed for the CPU, column c's alias in the high 32 bits and its probability's float32
    # bits in the low: a draw reads one entry, where prob and alias apart were two misses of the cache (update._noise)
    entries: np.ndarray = np.zeros(1, np.int64)
    kind: np.ndarray = np.zeros(1, np.int8)  # kind_of: LOGISTIC_NOISE, LOGISTIC_TREE or SOFTMAX_NOISE dimensions


def kind_of(n: int) -> np.ndarray:
    """Tables.kind for kind n (LOGISTIC_NOISE, ...): a one-element array of n dimensions."""
    return np.zeros((1,) * n, np.int8)


@functools.lru_cache(maxsize=None)
def _placeholders(device: str) -> tuple:
    return (torch.zeros(1, dtype=torch.float32, device=device), torch.zeros(1, dtype=torch.int64, device=device),
            torch.zeros(1, dtype=torch.int8, device=device))


def tables(head, to=lambda t: t.numpy()) -> tuple[str, Tables, int]:
    """(family, tables, candidates per example) of a head; `to` turns its tensors into the kernel's arrays."""
    f32, i64, i8 = (to(t) for t in _placeholders(str(head.weight.device)))
    if isinstance(head, HSHead):
        return LOGISTIC, Tables(TREE, f32, f32, i64, False, to(head.offsets), to(head.points), to(head.codes),
                                head.learns_bias, kind=kind_of(LOGISTIC_TREE)), head.depth
    if head.family == EXACT:
        raise ValueError("the exact softmax has no compiled step")
    s = head.sampler
    entries = (s.alias << 32) | (s.prob.view(torch.int32).to(torch.int64) & 0xFFFFFFFF)
    return head.family, Tables(NOISE, to(head.shift), to(s.prob), to(s.alias), head.drop_hits, i64, i64, i8,
                               head.learns_bias, entries=to(entries),
                               kind=kind_of(LOGISTIC_NOISE if head.family == LOGISTIC else SOFTMAX_NOISE)), head.k + 1


def draw_function(entry):
    """`noise_draw` for a backend whose alias table gives column c's (probability, alias) as entry(prob, alias, c):
    the GPU reads prob and alias apart (split_entry), the CPU one packed int64 (Tables.entries, given as alias)."""
    def noise_draw(seed, m, prob, alias):
        """Draw number m of a batch from the alias table (prob, alias), from splitmix64(seed + m·golden):
        32 bits choose the column (multiply-shift, uniform to 2^-32), the other 32 bits are the coin that
        keeps the column with probability prob[column] or else gives alias[column]."""
        z = seed + np.uint64(m) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        col = np.int64(((z >> np.uint64(32)) * np.uint64(len(prob))) >> np.uint64(32))
        # [0, 1]: the low 32 bits rounded once to float32, then scaled exactly (the same value as through float64,
        # with no float64 arithmetic, which costs the GPU)
        coin = np.float32(np.uint32(z & np.uint64(0xFFFFFFFF))) * np.float32(2.3283064365386963e-10)
        # the alias read whatever the coin says: its load no longer waits on a branch that goes one way for a third
        # of the columns, at random (the CPU mispredicted it; 1.03-1.08x sg and cbow words/s, docs/benchmarks-log.md
        # section 21), and the GPU's threads do not diverge on it
        p, other = entry(prob, alias, col)
        return col if coin < p else other
    return noise_draw


def split_entry(prob, alias, col):
    """Column col of the alias table as the GPU reads it: its probability and its alias, apart."""
    return prob[col], alias[col]


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


def logistic_function(exp):
    """`logistic` for a target whose exponential is `exp`: math.exp on the GPU, update.exp32 on the CPU."""
    def logistic(delta, positive, need_loss):
        """One term of a logistic head's loss at score Δ, as (d loss / dΔ, h, q) with the loss h - log q. Label 1's
        loss is softplus(-Δ), with d/dΔ = σ(Δ) - 1; label 0's is softplus(Δ), with d/dΔ = σ(Δ). softplus(x) =
        max(x, 0) + log1p(exp(-|x|)), and log1p(exp(-|Δ|)) = -log σ(|Δ|): so h = max(x, 0) and q = σ(|Δ|), which is
        σ(Δ) or 1 - σ(Δ), in [1/2, 1]. The kernels sum the h's and multiply the q's (in float64: a product of n of
        them is at least 2^-n) and take one log an example, not one a term (a log1p a term was a tenth of sg's
        time). With need_loss False, h = 0, or NaN when Δ is not finite (the trainer's divergence probe), and q = 1;
        a NaN Δ makes q NaN too."""
        one, zero = np.float32(1.0), np.float32(0.0)
        # float32 throughout (a float64 literal would promote); math's functions have float32 versions on both
        # targets, numpy's ufuncs only on the CPU
        sig = one / (one + exp(-delta))
        x = -delta if positive else delta
        g = sig - one if positive else sig
        if need_loss:  # max(x, 0) said as a select: numba's max is a call, which LLVM left in hs's loop (_lanes)
            return g, zero if x < zero else x, sig if delta >= zero else one - sig
        # said outright, not as 0·Δ: numba 0.59's compiler turned 0·Δ into 0 in the hs kernel, losing the probe
        return g, zero if abs(delta) <= np.float32(3.4e38) else np.float32(math.nan), one
    return logistic


logistic = logistic_function(math.exp)  # the GPU's (cuda.py)
