"""Output heads: what one example computes, in one description every backend runs.

s(r, c) = <out_r, h_c> + b_r is the score of output row r for the hidden vector h_c of context c. A head owns
its output rows (weight (R, D), bias (R,)) and says, for a batch of targets, which rows each example scores (its
candidates), with which label and which shift of the score, and how the terms combine (its family):

  logistic   each candidate is a binary decision: -log σ(Δ) for label 1, -log σ(-Δ) for label 0, Δ = s + shift
    neg        the target (1) and k noise words drawn from q (0), shift 0 (Mikolov et al. 2013); a noise word
               equal to the target is dropped, as word2vec does
    nce        the same with shift -log(k q(w)) (Gutmann & Hyvärinen 2010; Mnih & Teh 2012); no draw is dropped,
               they are independent samples of q. Its optimum is s(w, c) = log p(w|c): self-normalised
    hs         the inner nodes on the path to the target in a Huffman tree of the vocabulary, label 1 - the
               code bit, shift 0 (word2vec.c's hierarchical softmax); R = V - 1; normalised by construction
  softmax    one softmax over the target and k noise words, cross-entropy on the target; a noise word equal to
             the target is masked, as TensorFlow's remove_accidental_hits does: kept, it would be a negative
             for itself, pushing the target's score down with the weight it pushes it up
    infonce          shift 0 (van den Oord et al. 2018); its optimum is exp(s) ∝ p(w|c) / q(w), a PMI-like score
    sampled-softmax  shift -log(k q(w)) (Jean et al. 2015): s tends to log p(w|c) plus a constant per context
  exact      the softmax over the whole vocabulary, a dense product: the PyTorch step only

The steps (step/: torch_step.py, PyTorch ops; cpu.py, the compiled CPU loop; cuda.py, the CUDA kernel) each
implement one update per family from this description. `loss` is the differentiable definition (the tests
check every backend against it), and `scores` gives each word's log-score for exact evaluation: logsumexp over
the vocabulary is log Z(c), 0 for hs up to rounding.
"""

from __future__ import annotations

from .. import jit_cache  # noqa: F401 (before any kernel: numba's cache keyed to every file a kernel reaches)

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .sampling import AliasSampler

LOGISTIC, SOFTMAX, EXACT = "logistic", "softmax", "exact"
SAMPLED = {"neg": (LOGISTIC, False), "nce": (LOGISTIC, True), "infonce": (SOFTMAX, False),
           "sampled-softmax": (SOFTMAX, True)}  # loss -> (family, shift by -log(k q))


class Candidates(NamedTuple):
    """What each example of a batch scores: (B, C) output rows, labels (1 target / 0 noise, or the Huffman
    labels), score shifts, and which entries are terms of the loss (padding and dropped draws are not)."""
    rows: torch.Tensor
    labels: torch.Tensor
    shift: torch.Tensor
    valid: torch.Tensor


class OutputHead(nn.Module):
    family = EXACT
    learns_bias = True  # hs: no (word2vec's has none, and every example's update of the root's would add up)

    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(rows, dim), requires_grad=False)  # (R, D)
        self.bias = nn.Parameter(torch.zeros(rows), requires_grad=False)  # (R,)

    def candidates(self, targets: torch.Tensor, generator: torch.Generator | None = None) -> Candidates:
        # Not a missing piece: the exact softmax scores the whole vocabulary (torch_step's dense branch),
        # and the sampled and tree heads override this. Reaching it means a backend mistook the family.
        raise ValueError(f"{type(self).__name__} scores the whole vocabulary; it has no candidates")

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Each word's log-score for the hidden vectors: (B, D) -> (B, V); exp of it is the model's
        unnormalised distribution."""
        return hidden @ self.weight.T + self.bias

    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """Exactly normalised log p(w | c) over the whole vocabulary: (B, D) -> (B, V)."""
        return torch.log_softmax(self.scores(hidden), dim=-1)

    def loss(self, hidden, targets, cand: Candidates | None = None, weight=None, bias=None) -> torch.Tensor:
        """Per-example training loss (B,), differentiable in hidden, weight and bias (the head's by default)."""
        w = self.weight if weight is None else weight
        b = self.bias if bias is None else bias
        if self.family == EXACT:
            return F.cross_entropy(hidden @ w.T + b, targets, reduction="none")
        delta = torch.einsum("bd,bcd->bc", hidden, w[cand.rows]) + b[cand.rows] + cand.shift  # (B, C)
        if self.family == LOGISTIC:
            # label 1: -log σ(Δ) = softplus(-Δ); label 0: -log σ(-Δ) = softplus(Δ)
            return (F.softplus((1 - 2 * cand.labels) * delta) * cand.valid).sum(1)
        delta = delta.masked_fill(~cand.valid, -math.inf)
        return torch.logsumexp(delta, 1) - delta[:, 0]  # the target is candidate 0


class SoftmaxHead(OutputHead):
    """The exact softmax over the vocabulary."""

    def __init__(self, vocab_size: int, dim: int, sampler: AliasSampler | None = None):
        super().__init__(vocab_size, dim)
        if sampler is not None:
            self.bias.copy_(sampler.log_unigram)  # start from the (normalised) unigram model


class SampledHead(OutputHead):
    """neg, nce, infonce and sampled-softmax: the target and k noise words drawn from q."""

    def __init__(self, vocab_size: int, dim: int, sampler: AliasSampler, negatives: int, loss: str):
        super().__init__(vocab_size, dim)
        self.family, corrected = SAMPLED[loss]
        self.sampler, self.k = sampler, negatives
        # which noise draws equal to the target are dropped: all but NCE's (see the module docstring)
        self.drop_hits = loss != "nce"
        shift = -(sampler.log_q + math.log(negatives)) if corrected else torch.zeros_like(sampler.log_q)
        self.register_buffer("shift", shift)  # (V,): -log(k q(w)), or 0
        if corrected:
            # Start from the unigram model, log p(w) = log f(w), which is already normalised, rather than from
            # s = 0 (a uniform model whose log Z is log V), so that there is less to correct.
            self.bias.copy_(sampler.log_unigram)

    def candidates(self, targets, generator=None, noise=None) -> Candidates:
        """The target and k noise words (drawn from q unless given, (B, k))."""
        if noise is None:
            noise = self.sampler.draw((len(targets), self.k), generator)  # (B, k)
        rows = torch.cat([targets[:, None], noise], 1)  # (B, 1+k)
        labels = torch.zeros(rows.shape, dtype=self.weight.dtype, device=rows.device)
        labels[:, 0] = 1
        valid = torch.ones_like(rows, dtype=torch.bool)
        if self.drop_hits:
            valid[:, 1:] = noise != targets[:, None]
        return Candidates(rows, labels, self.shift[rows], valid)


class HSHead(OutputHead):
    """word2vec.c's hierarchical softmax: V - 1 inner nodes of a Huffman tree built from the counts."""

    family = LOGISTIC
    # Every example's path starts at the root, so the biases of the top nodes would take a batch's summed update
    # (the steps apply biases once a batch), which cut sg-hs's analogies to a fraction.
    # word2vec.c's inner nodes have no bias either.
    learns_bias = False

    def __init__(self, counts: np.ndarray, dim: int, tree: tuple | None = None):
        offsets, points, codes = huffman(counts) if tree is None else tree
        super().__init__(max(len(offsets) - 2, 1), dim)
        # the path of word w: points[offsets[w]:offsets[w+1]] (inner nodes, root first) and codes (its branches)
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.int64))  # (V+1,)
        self.register_buffer("points", torch.as_tensor(points, dtype=torch.int64))  # (N,)
        self.register_buffer("codes", torch.as_tensor(codes, dtype=torch.int8))  # (N,)
        lengths = np.diff(offsets)
        self.depth = int(lengths.max()) if len(lengths) else 0  # the longest path

    def candidates(self, targets, generator=None) -> Candidates:
        """The inner nodes on each target's path, padded to the longest: (B, depth)."""
        start, length = self.offsets[targets], self.offsets[targets + 1] - self.offsets[targets]  # (B,)
        step = torch.arange(self.depth, device=targets.device)  # (L,)
        valid = step[None, :] < length[:, None]  # (B, L)
        at = torch.where(valid, start[:, None] + step[None, :], 0)
        rows = torch.where(valid, self.points[at], 0)
        labels = torch.where(valid, 1 - self.codes[at].to(self.weight.dtype), 0)
        return Candidates(rows, labels, torch.zeros(rows.shape, dtype=self.weight.dtype, device=rows.device), valid)

    def scores(self, hidden):
        """log p(w | c) of every word, the sum of log σ(±s) along its path: normalised already."""
        inner = hidden @ self.weight.T + self.bias  # (B, V-1)
        up, down = self._paths(hidden.dtype)
        # label 1 (code 0): log σ(s); label 0: log σ(-s); summed over each word's path as sparse products
        return (torch.sparse.mm(up, F.logsigmoid(inner).T) + torch.sparse.mm(down, F.logsigmoid(-inner).T)).T

    def _paths(self, dtype):
        """(V, V-1) sparse matrices: a 1 where an inner node is on a word's path with code 0 (up) or 1 (down)."""
        if getattr(self, "_cache", (None,))[0] != (dtype, self.weight.device):
            v = len(self.offsets) - 1
            word = torch.repeat_interleave(torch.arange(v, device=self.points.device), self.offsets.diff())
            mats = []
            for bit in (0, 1):
                on = self.codes == bit
                idx = torch.stack([word[on], self.points[on]])
                ones = torch.ones(int(on.sum()), dtype=dtype, device=idx.device)
                mats.append(torch.sparse_coo_tensor(idx, ones, (v, len(self.weight)), check_invariants=True).coalesce())
            self._cache = ((dtype, self.weight.device), mats)
        return self._cache[1]


def huffman(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Huffman tree of word2vec.c's CreateBinaryTree, for counts in descending order, as the paths of the
    words: offsets (V+1,), and the inner nodes (0..V-2, the root V-2, root first) and code bits along them.

    Two queues merge the two lightest nodes V - 1 times: the words, lightest (last) first, and the new inner
    nodes, created in increasing weight; on a tie the inner node is taken first, as word2vec.c does."""
    v = len(counts)
    if v < 2:  # one word: an empty path, p = 1
        return np.zeros(v + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    count = np.concatenate([np.asarray(counts, dtype=np.int64), np.full(v, 10**15, dtype=np.int64)])
    parent, binary, depth = _tree(count, v)
    offsets = np.concatenate([[0], np.cumsum(depth[:v])])
    points = np.zeros(offsets[-1], dtype=np.int64)
    codes = np.zeros(offsets[-1], dtype=np.int8)
    node = np.arange(v)
    for _ in range(int(depth[:v].max())):  # walk every word up to the root at once, one level a step
        live = node != 2 * v - 2
        w, n = np.nonzero(live)[0], node[live]
        at = offsets[w] + depth[n] - 1  # the edge into n is the (depth - 1)-th of the path
        points[at] = parent[n] - v
        codes[at] = binary[n]
        node[live] = parent[n]
    return offsets, points, codes


def _tree(count: np.ndarray, v: int):
    """word2vec.c's merge loop: each node's parent and branch bit (1 for the second of a merged pair), and depth."""
    parent = np.zeros(2 * v - 1, dtype=np.int64)
    binary = np.zeros(2 * v - 1, dtype=np.int8)
    pos1, pos2 = v - 1, v
    for a in range(v - 1):
        if pos1 >= 0 and count[pos1] < count[pos2]:
            min1, pos1 = pos1, pos1 - 1
        else:
            min1, pos2 = pos2, pos2 + 1
        if pos1 >= 0 and count[pos1] < count[pos2]:
            min2, pos1 = pos1, pos1 - 1
        else:
            min2, pos2 = pos2, pos2 + 1
        count[v + a] = count[min1] + count[min2]
        parent[min1] = parent[min2] = v + a
        binary[min2] = 1
    depth = np.zeros(2 * v - 1, dtype=np.int64)
    for node in range(2 * v - 3, -1, -1):  # from the root (2v - 2) down: a parent is created after its children
        depth[node] = depth[parent[node]] + 1
    return parent, binary, depth


try:  # 2V loop steps: compiled, for a vocabulary of millions
    import numba
    _tree = numba.njit(cache=True)(_tree)
except ImportError:
    pass


def output_rows(loss: str, vocab_size: int) -> int:
    """How many output rows a head has: an inner node per merge for hs, a word each for the others."""
    return max(vocab_size - 1, 1) if loss == "hs" else vocab_size


def make_head(loss: str, counts: np.ndarray, dim: int, sampler: AliasSampler | None, negatives: int) -> OutputHead:
    """The head a run's --loss names; an unknown name is an error."""
    if loss == "softmax":
        return SoftmaxHead(len(counts), dim, sampler)
    if loss == "hs":
        return HSHead(counts, dim)
    if loss in SAMPLED:
        return SampledHead(len(counts), dim, sampler, negatives, loss)
    raise ValueError(f"unknown loss {loss!r}")
