"""The model: input embeddings, the architecture that turns a context into a hidden vector, and a head.

Skip-gram: the hidden vector is the centre word's input vector; the target is one context word.
CBOW: the hidden vector is the mean of the context words' input vectors; the target is the centre word.
The architecture is orthogonal to the head: both call head.step with (hidden, targets).
With a NEG or NCE head the trainer sets `fused` where numba can compile the step (the CPU, or a GPU), and
train_step runs fused.train_step instead: the same per-example math as one compiled loop (fused.py, and
fused_cuda.py on a GPU), several times faster than these tensor ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fused
from .heads import OutputHead


class Word2Vec(nn.Module):
    def __init__(self, vocab_size: int, dim: int, arch: str, head: OutputHead,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.arch = arch
        # word2vec.c's initialisation: input uniform in [-0.5/D, 0.5/D), output (in the head) zero
        init = (torch.rand(vocab_size, dim, generator=generator) - 0.5) / dim
        self.input = nn.Parameter(init, requires_grad=False)  # (V, D)
        self.head = head
        self.fused = False  # set by the trainer: use fused.train_step (same update, faster)

    def hidden(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """sg: inputs (B,) -> (B, D). cbow: inputs (B, 2W), mask (B, 2W) -> masked mean (B, D)."""
        if self.arch == "sg":
            return self.input.index_select(0, inputs)
        flat, offsets = _bags(inputs, mask)
        # embedding_bag gathers and averages the valid context rows in one fused kernel
        return F.embedding_bag(flat, self.input, offsets, mode="mean")

    @torch.no_grad()
    def train_step(self, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
        """One SGD step on a batch; returns the summed loss (a 0-d tensor, left on the device), or with
        need_loss=False a finiteness probe (see OutputHead.step)."""
        if self.fused:
            return fused.train_step(self, inputs, targets, lr, mask, generator, need_loss)
        hidden = self.hidden(inputs, mask)  # (B, D)
        loss, grad_hidden = self.head.step(hidden, targets, lr, generator, need_loss)  # (B, D)
        update = grad_hidden.mul_(-lr)  # index_add_ without alpha: see heads.SampledHead.step
        if self.arch == "sg":
            self.input.index_add_(0, inputs, update)
        else:
            # As word2vec.c and gensim (cbow_mean=1) do, every context word receives the hidden
            # vector's full gradient, not 1/|context| of it: the update their learning rates are tuned for.
            flat, _ = _bags(inputs, mask)
            example = torch.repeat_interleave(mask.sum(1))  # (N,) the example each context slot belongs to
            self.input.index_add_(0, flat, update.index_select(0, example))
        return loss


def _bags(inputs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The valid context ids of each example, concatenated (N,), and where each example's start (B,)."""
    counts = mask.sum(1)  # (B,)
    return inputs[mask], torch.cumsum(counts, 0) - counts
