"""The model: input embeddings, the architecture that turns a context into a hidden vector, and a head.

Skip-gram: the hidden vector is one context word's input vector; the target is the centre word (as in
word2vec.c and gensim; corpus/examples.py: skipgram_pairs says why).
CBOW: the hidden vector is the mean of the context words' input vectors; the target is the centre word.
The architecture is orthogonal to the head, and both to the step that trains them (step/plan.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .heads import OutputHead


class Word2Vec(nn.Module):
    def __init__(self, vocab_size: int, dim: int, arch: str, head: OutputHead,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.arch = arch
        # gensim's initialisation: input uniform in [-1/D, 1/D) (word2vec.c's, half as wide, scored a little lower
        # on the analogies), output (in the head) zero
        init = (torch.rand(vocab_size, dim, generator=generator) * 2 - 1) / dim
        self.input = nn.Parameter(init, requires_grad=False)  # (V, D)
        self.head = head

    def hidden(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """sg: inputs (B,) -> (B, D). cbow: inputs (B, 2W), mask (B, 2W) -> masked mean (B, D)."""
        if self.arch == "sg":
            return self.input.index_select(0, inputs)
        flat, offsets = _bags(inputs, mask)
        # embedding_bag gathers and averages the valid context rows in one fused kernel
        return F.embedding_bag(flat, self.input, offsets, mode="mean")

    @torch.no_grad()
    def add_to_inputs(self, inputs, mask, update: torch.Tensor) -> None:
        """Add each example's (B, D) update to its input rows."""
        if self.arch == "sg":
            self.input.index_add_(0, inputs, update)
        else:
            # As word2vec.c and gensim (cbow_mean=1) do, every context word receives the hidden
            # vector's full gradient, not 1/|context| of it: the update their learning rates are tuned for.
            flat, _ = _bags(inputs, mask)
            example = torch.repeat_interleave(mask.sum(1))  # (N,) the example each context slot belongs to
            self.input.index_add_(0, flat, update.index_select(0, example))


def _bags(inputs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The valid context ids of each example, concatenated (N,), and where each example's start (B,)."""
    counts = mask.sum(1)  # (B,)
    return inputs[mask], torch.cumsum(counts, 0) - counts
