"""Noise distribution (unigram^power as a Vose alias table) and word2vec's frequent-word sub-sampling."""

from __future__ import annotations

import numpy as np
import torch


def noise_probs(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """q(w) = count(w)^power / sum_v count(v)^power, in float64."""
    weights = counts.astype(np.float64) ** power
    return weights / weights.sum()


def vose_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: column i keeps i with probability prob[i], else gives alias[i].

    Each column holds mass 1/V: a "small" column (scaled mass < 1) is topped up from a "large" one,
    whose remaining mass is reduced accordingly; columns left at the end are full (prob 1).
    """
    n = len(probs)
    scaled = probs.astype(np.float64) * n
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    # Whatever remains is 1 up to rounding error.
    return prob, alias


class AliasSampler:
    """Draws word ids from q in O(1) each, in bulk, on the training device; also gives log q."""

    def __init__(self, counts: np.ndarray, power: float = 0.75, device: torch.device | str = "cpu"):
        probs = noise_probs(counts, power)
        prob, alias = vose_table(probs)
        self.prob = torch.as_tensor(prob, dtype=torch.float32, device=device)  # (V,)
        self.alias = torch.as_tensor(alias, dtype=torch.int64, device=device)  # (V,)
        self.log_q = torch.as_tensor(np.log(probs), dtype=torch.float32, device=device)  # (V,)
        unigram = counts / counts.sum()
        self.log_unigram = torch.as_tensor(np.log(unigram), dtype=torch.float32, device=device)  # (V,)

    def __len__(self) -> int:
        return len(self.prob)

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        column = torch.randint(len(self.prob), shape, device=self.prob.device, generator=generator)
        coin = torch.rand(shape, device=self.prob.device, generator=generator)
        return torch.where(coin < self.prob[column], column, self.alias[column])


def keep_probs(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec's keep probability (sqrt(f/(t N)) + 1) * (t N) / f, capped at 1; all ones when t = 0.

    f is the word's count and N the number of corpus tokens in the vocabulary (word2vec.c's train_words).
    """
    counts = counts.astype(np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    tn = sample * counts.sum()
    return np.minimum((np.sqrt(counts / tn) + 1.0) * tn / counts, 1.0)
