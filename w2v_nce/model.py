"""The model: input embeddings, the architecture that turns a context into a hidden vector, and a head.

Skip-gram: the hidden vector is the centre word's input vector; the target is one context word.
CBOW: the hidden vector is the mean of the context words' input vectors; the target is the centre word.
The architecture is orthogonal to the head: both call head.step with (hidden, targets).
"""

from __future__ import annotations

import torch
from torch import nn

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

    def hidden(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """sg: inputs (B,) -> (B, D). cbow: inputs (B, 2W), mask (B, 2W) -> masked mean (B, D)."""
        if self.arch == "sg":
            return self.input.index_select(0, inputs)
        m = mask.to(self.input.dtype)  # (B, 2W)
        ctx = self.input.index_select(0, inputs.reshape(-1)).view(*inputs.shape, -1)  # (B, 2W, D)
        return (ctx * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)

    @torch.no_grad()
    def train_step(self, inputs, targets, lr: float, mask=None, generator=None) -> torch.Tensor:
        """One SGD step on a batch; returns the summed loss (a 0-d tensor, left on the device)."""
        hidden = self.hidden(inputs, mask)  # (B, D)
        loss, grad_hidden = self.head.step(hidden, targets, lr, generator)  # (B, D)
        update = grad_hidden.mul_(-lr)  # index_add_ without alpha: see heads.SampledHead.step
        if self.arch == "sg":
            self.input.index_add_(0, inputs, update)
        else:
            # As word2vec.c and gensim (cbow_mean=1) do, every context word receives the hidden
            # vector's full gradient, not 1/|context| of it: the update their learning rates are tuned for.
            example, slot = mask.nonzero(as_tuple=True)  # (N,) valid context slots
            self.input.index_add_(0, inputs[example, slot], update.index_select(0, example))
        return loss
