"""Output heads: one interface, each head owning the output embeddings and a per-word bias.

s(w, c) = <out_w, h_c> + b_w is the score of word w given the hidden vector h_c of context c.
- softmax: exact cross-entropy over the whole vocabulary.
- neg:     negative sampling, -log σ(s⁺) - Σ log σ(-s⁻) over k noise words.
- nce:     noise-contrastive estimation with the normaliser fixed at 1: every score is shifted by the
           noise log-probability, Δ(w, c) = s(w, c) - log(k q(w)), loss -log σ(Δ⁺) - Σ log(1 - σ(Δ⁻)).
           Its optimum is s(w, c) = log p(w | c), so exp(s) is a (self-)normalised model.

`loss` is the differentiable definition (used by tests and evaluation). `step` is the training update:
it computes the same gradients in closed form, applies plain SGD to the rows of its own parameters that
the batch touched (index_add_ sums repeated rows), and returns the gradient for the hidden vectors,
which the model applies to the input embeddings. No autograd graph is built on the training path.
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import nn

from .sampling import AliasSampler


class OutputHead(nn.Module, abc.ABC):
    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(vocab_size, dim), requires_grad=False)  # (V, D)
        self.bias = nn.Parameter(torch.zeros(vocab_size), requires_grad=False)  # (V,)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """s(w, c) for every word: (B, D) -> (B, V)."""
        return hidden @ self.weight.T + self.bias

    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """Exactly normalised log p(w | c) over the whole vocabulary: (B, D) -> (B, V)."""
        return torch.log_softmax(self.scores(hidden), dim=-1)

    @abc.abstractmethod
    def loss(self, hidden, targets, noise=None, weight=None, bias=None) -> torch.Tensor:
        """Per-example training loss (B,), differentiable; weight/bias override the head's own (tests)."""

    @abc.abstractmethod
    def step(self, hidden, targets, lr: float, generator=None, need_loss: bool = True):
        """One SGD step on the head's rows; returns (summed loss, d loss / d hidden (B, D)).

        With need_loss=False the first value is only a finiteness probe (0 when every score is finite,
        NaN otherwise), which saves computing the loss on steps that do not report it.
        """


class SoftmaxHead(OutputHead):
    def loss(self, hidden, targets, noise=None, weight=None, bias=None):
        w = self.weight if weight is None else weight
        b = self.bias if bias is None else bias
        return F.cross_entropy(hidden @ w.T + b, targets, reduction="none")

    def step(self, hidden, targets, lr, generator=None, need_loss=True):
        logits = self.scores(hidden)  # (B, V)
        loss = F.cross_entropy(logits, targets, reduction="sum")
        g = torch.softmax(logits, dim=-1)  # d loss / d logits = softmax - onehot
        g[torch.arange(len(targets), device=g.device), targets] -= 1.0
        grad_hidden = g @ self.weight  # (B, D), with the weights before this step
        # The exact softmax gradient touches every output row: the one dense update in the project.
        self.weight.addmm_(g.T, hidden, alpha=-lr)  # (V, D)
        self.bias.sub_(g.sum(0), alpha=lr)
        return (loss if need_loss else loss * 0.0), grad_hidden  # 0 * NaN stays NaN: the finiteness probe


class SampledHead(OutputHead):
    """NEG and NCE: logistic loss on the target and k noise words; they differ only in the score shift."""

    def __init__(self, vocab_size: int, dim: int, sampler: AliasSampler, negatives: int, nce: bool):
        super().__init__(vocab_size, dim)
        self.sampler, self.k, self.nce = sampler, negatives, nce
        if nce:
            # shift[w] = -log(k q(w)); NEG is the special case of a zero shift
            self.register_buffer("shift", -(sampler.log_q + math.log(negatives)))
            # Start from the unigram model, log p(w) = log f(w), which is already normalised, rather than
            # from s = 0 (a uniform model whose log Z is log V), so that NCE has less to correct.
            self.bias.copy_(sampler.log_unigram)
        else:
            self.register_buffer("shift", torch.zeros(vocab_size, device=sampler.prob.device))

    def _candidates(self, targets, noise):
        """Rows (B, 1+k), labels (1 for the target), and the mask of terms in the loss (B, 1+k)."""
        rows = torch.cat([targets[:, None], noise], 1)  # (B, 1+k)
        mask = torch.ones_like(rows, dtype=torch.bool)
        if not self.nce:
            # word2vec skips a negative that equals the target; true NCE must not, since its noise
            # samples are independent draws from q
            mask[:, 1:] = noise != targets[:, None]
        return rows, mask

    def loss(self, hidden, targets, noise=None, weight=None, bias=None):
        w = self.weight if weight is None else weight
        b = self.bias if bias is None else bias
        rows, mask = self._candidates(targets, noise)
        delta = torch.einsum("bd,bjd->bj", hidden, w[rows]) + b[rows] + self.shift[rows]  # (B, 1+k)
        # -log σ(Δ⁺) = softplus(-Δ⁺);  -log(1 - σ(Δ⁻)) = -log σ(-Δ⁻) = softplus(Δ⁻)
        terms = torch.cat([F.softplus(-delta[:, :1]), F.softplus(delta[:, 1:])], 1)
        return (terms * mask).sum(1)

    def gradients(self, hidden, targets, noise, need_loss: bool = True):
        """Closed-form gradients: (loss (B,) or probe, rows (B, 1+k), d/ds (B, 1+k), d/dhidden (B, D))."""
        rows, mask = self._candidates(targets, noise)
        flat = rows.reshape(-1)  # (B(1+k),)
        # index_select and mul+sum are several times faster on CPU than fancy indexing and tiny bmm's
        out = self.weight.index_select(0, flat).view(*rows.shape, -1)  # (B, 1+k, D)
        delta = (out * hidden[:, None, :]).sum(-1) + self.bias.index_select(0, flat).view(rows.shape)  # (B, 1+k)
        if self.nce:
            delta += self.shift.index_select(0, flat).view(rows.shape)
        g = torch.sigmoid(delta)
        g[:, 0] -= 1.0  # d/dΔ of softplus(-Δ) is σ(Δ) - 1; of softplus(Δ) it is σ(Δ)
        if not self.nce:
            g *= mask
        if need_loss:
            loss = F.softplus(-delta[:, 0]) + (F.softplus(delta[:, 1:]) * mask[:, 1:]).sum(1)
        else:  # the loss is finite exactly when every score is: 0 if so, NaN if not
            loss = delta.sum() * 0.0
        grad_hidden = torch.bmm(g[:, None, :], out).squeeze(1)  # (B, D)
        return loss, rows, g, grad_hidden

    def step(self, hidden, targets, lr, generator=None, need_loss=True):
        noise = self.sampler.draw((len(targets), self.k), generator)  # (B, k)
        loss, rows, g, grad_hidden = self.gradients(hidden, targets, noise, need_loss)
        flat = rows.reshape(-1)  # (B(1+k),)
        g = g.mul_(-lr)  # fold the rate into the small tensor: index_add_ with alpha is 3x slower on CPU
        self.weight.index_add_(0, flat, (g[:, :, None] * hidden[:, None, :]).view(len(flat), -1))
        self.bias.index_add_(0, flat, g.view(-1))
        return loss.sum(), grad_hidden


def make_head(loss: str, vocab_size: int, dim: int, sampler: AliasSampler | None, negatives: int) -> OutputHead:
    if loss == "softmax":
        head = SoftmaxHead(vocab_size, dim)
        if sampler is not None:
            head.bias.copy_(sampler.log_unigram)  # start from the (normalised) unigram model
        return head
    if loss in ("neg", "nce"):
        return SampledHead(vocab_size, dim, sampler, negatives, nce=loss == "nce")
    raise ValueError(f"unknown loss {loss!r}")
