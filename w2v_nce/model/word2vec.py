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


def centre_input(arch: str, subwords) -> bool:
    """Whether skip-gram's examples take the centre word as the input and the context word as the target: with
    subwords (fastText's direction). Then a centre's 2W examples share one input word, whose n-gram rows the CPU
    kernel reads once and updates once for all of them (step/inputs.py: carry_input), fastText's sequential update in
    exact arithmetic, at a fraction of its cost. Without subwords word2vec's direction (corpus/examples.py:
    skipgram_pairs says why)."""
    return arch == "sg" and subwords is not None


def input_slots(arch: str, window: int) -> int:
    """The input words of an example: skip-gram's one, CBOW's 2W context slots (some empty at a line's ends)."""
    return 1 if arch == "sg" else 2 * window


class Word2Vec(nn.Module):
    def __init__(self, vocab_size: int, dim: int, arch: str, head: OutputHead,
                 generator: torch.Generator | None = None, subwords: tuple[torch.Tensor, torch.Tensor] | None = None,
                 buckets: int = 0):
        """subwords: fastText's subword vectors, as (offsets (V+1,), rows (N,)) int64 (corpus/subwords.run_table): word
        w's input rows are rows[offsets[w]:offsets[w+1]], its own and its n-grams', the n-grams' `buckets` rows (one
        for each hash bucket the words use) after the words'; its input vector is their mean. None: a word's input
        vector is its own row."""
        super().__init__()
        self.arch = arch
        self.vocab_size = vocab_size
        # gensim's initialisation: input uniform in [-1/D, 1/D) (word2vec.c's, half as wide, scored a little lower
        # on the analogies), output (in the head) zero; fastText's n-gram rows the same
        # in place: with 2M n-gram rows the matrix is 0.8 GB, and (rand * 2 - 1) / dim held two of it at once (the
        # peak of a subword run, 1.8x fastText's); the same values to the bit
        init = torch.rand(vocab_size + buckets, dim, generator=generator).mul_(2).sub_(1).div_(dim)
        self.input = nn.Parameter(init, requires_grad=False)  # (V + buckets, D)
        self.head = head
        self.register_buffer("sub_offsets", None if subwords is None else subwords[0])  # (V+1,) or None
        self.register_buffer("sub_rows", None if subwords is None else subwords[1])  # (N,) or None

    def hidden(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """sg: inputs (B,) -> (B, D). cbow: inputs (B, 2W), mask (B, 2W) -> masked mean (B, D). With subwords the
        mean of every input row of the example's words."""
        if self.arch == "sg" and self.sub_offsets is None:
            return self.input.index_select(0, inputs)
        rows, example = self._input_rows(inputs, mask)
        starts = torch.searchsorted(example, torch.arange(len(inputs), device=example.device))  # (B,)
        # embedding_bag gathers and averages each example's rows in one fused kernel
        return F.embedding_bag(rows, self.input, starts, mode="mean")

    @torch.no_grad()
    def add_to_inputs(self, inputs, mask, update: torch.Tensor) -> None:
        """Add each example's (B, D) update to its input rows."""
        if self.arch == "sg" and self.sub_offsets is None:
            self.input.index_add_(0, inputs, update)
            return
        # As word2vec.c and gensim (cbow_mean=1) do, every context word receives the hidden vector's full gradient,
        # not 1/|context| of it: the update their learning rates are tuned for; as fastText does, every n-gram row
        rows, example = self._input_rows(inputs, mask)
        self.input.index_add_(0, rows, update.index_select(0, example))

    def _input_rows(self, inputs, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """Every input row of the examples, in order, (N,), and the example each belongs to, (N,) ascending."""
        if self.arch == "sg":
            words, example = inputs, torch.arange(len(inputs), device=inputs.device)
        else:
            words = inputs[mask]
            example = torch.repeat_interleave(mask.sum(1))  # (N,) the example each context slot belongs to
        if self.sub_offsets is None:
            return words, example
        start, length = self.sub_offsets[words], self.sub_offsets[words + 1] - self.sub_offsets[words]
        first = torch.cumsum(length, 0) - length  # each word's first place among the rows
        place = torch.arange(int(length.sum()), device=words.device) - torch.repeat_interleave(first, length)
        return self.sub_rows[torch.repeat_interleave(start, length) + place], torch.repeat_interleave(example, length)

    @torch.no_grad()
    def word_vectors(self) -> torch.Tensor:
        """(V, D): each word's input vector (with subwords the mean of its rows, as fastText's getWordVector)."""
        if self.sub_offsets is None:
            return self.input
        return F.embedding_bag(self.sub_rows, self.input, self.sub_offsets[:-1], mode="mean")
