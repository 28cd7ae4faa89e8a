"""Vocabulary: word counts in one streaming pass, --min-count / --max-vocab, descending-count order.

The same pass encodes the corpus as int32 ids, written straight to disk, so the corpus is never held
as Python strings: each new word gets the next provisional id (a defaultdict whose factory is its own
__len__, so the lookup loop runs in C), and once the counts are known the provisional ids are remapped
to frequency order in a second, chunked pass over the on-disk array.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import W2VError
from .files import atomic_path
from .tokenize import LINE_BREAK, iter_tokens

SEPARATOR = -1  # id stored between lines in the encoded corpus; windows never cross it
REMAP_CHUNK = 1 << 24


@dataclass
class Vocab:
    words: list[str]
    counts: np.ndarray  # (V,) int64, descending

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """Corpus tokens that are in the vocabulary (word2vec's train_words)."""
        return int(self.counts.sum())

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for w, c in zip(self.words, self.counts.tolist()):
                f.write(f"{w}\t{c}\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        words, counts = [], []
        with open(path, encoding="utf-8", newline="\n") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 2 or not parts[1].isdigit():
                    raise W2VError(f"{path}:{n}: expected 'word<TAB>count'; the run directory is damaged")
                words.append(parts[0])
                counts.append(int(parts[1]))
        return cls(words, np.asarray(counts, dtype=np.int64))


def select(words: list[str], counts: np.ndarray, min_count: int, max_vocab: int | None) -> np.ndarray:
    """Indices of the kept words, by descending count; ties keep first-seen order (stable sort)."""
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= min_count]
    if max_vocab is not None:
        order = order[:max_vocab]
    return order


def build(corpus: str | os.PathLike, ids_path: str | os.PathLike, min_count: int = 5,
          max_vocab: int | None = None, lowercase: bool = False, encoding_errors: str = "strict",
          progress=None) -> tuple[Vocab, dict]:
    """Count and encode `corpus`; write its int32 ids (SEPARATOR between lines) to `ids_path`.

    Returns the vocabulary and stats (tokens, kept tokens, bytes, replaced bytes, seconds).
    """
    start = time.perf_counter()
    index: defaultdict = defaultdict()
    index.default_factory = index.__len__  # a new word gets the next provisional id
    lookup = index.__getitem__
    stats: dict = {}
    ids_path = Path(ids_path)
    raw_path = ids_path.with_name(ids_path.name + ".raw")
    n_raw = 0
    try:
        with open(raw_path, "wb") as raw:
            for tokens in iter_tokens(corpus, lowercase, encoding_errors, stats=stats):
                ids = np.fromiter(map(lookup, tokens), dtype=np.int32, count=len(tokens))
                raw.write(ids.tobytes())
                n_raw += len(ids)
                if progress is not None:
                    progress(stats["bytes"])
        sep_id = index.get(LINE_BREAK, -1)
        words = list(index)
        del index, lookup
        provisional = np.memmap(raw_path, dtype=np.int32, mode="r", shape=(n_raw,)) if n_raw else np.zeros(0, np.int32)
        counts = np.zeros(len(words), dtype=np.int64)
        for s in range(0, n_raw, REMAP_CHUNK):
            counts += np.bincount(provisional[s:s + REMAP_CHUNK], minlength=len(words))
        if sep_id >= 0:
            counts[sep_id] = 0
        n_tokens = int(counts.sum())
        if n_tokens == 0:
            raise W2VError(f"corpus {corpus} has no tokens (it is empty or whitespace only); pass a text file")
        keep = select(words, counts, min_count, max_vocab)
        if len(keep) == 0:
            raise W2VError(f"no word occurs {min_count} times or more in {corpus} ({len(words) - (sep_id >= 0)} "
                           f"distinct words, {n_tokens} tokens); lower --min-count")
        remap = np.full(len(words) + 1, -2, dtype=np.int32)  # -2: dropped word
        remap[keep] = np.arange(len(keep), dtype=np.int32)
        if sep_id >= 0:
            remap[sep_id] = SEPARATOR
        vocab = Vocab([words[i] for i in keep], counts[keep])
        n_out = 0
        with atomic_path(ids_path) as tmp, open(tmp, "wb") as out:
            for s in range(0, n_raw, REMAP_CHUNK):
                new = remap[provisional[s:s + REMAP_CHUNK]]
                new = new[new != -2]  # dropped words vanish before windows are formed, as in word2vec.c
                out.write(new.tobytes())
                n_out += len(new)
        del provisional
    finally:
        if raw_path.exists():
            raw_path.unlink()
    stats.update(tokens=n_tokens, kept_tokens=vocab.total, distinct=len(words) - (sep_id >= 0),
                 seconds=time.perf_counter() - start, ids=n_out)
    return vocab, stats


def load_ids(path: str | os.PathLike) -> np.ndarray:
    """The encoded corpus, memory-mapped (read-only): a corpus larger than RAM streams from disk."""
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, dtype=np.int32)
    return np.memmap(path, dtype=np.int32, mode="r", shape=(size // 4,))
