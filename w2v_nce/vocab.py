"""Vocabulary: word counts in one streaming pass, --min-count / --max-vocab, descending-count order.

The same pass encodes the corpus as int32 ids, written straight to disk, so the corpus is never held
as Python strings: a compiled loop splits each block of UTF-8 bytes (tokenize.iter_token_bytes), gives
each new word the next provisional id in a hash table (_Index) and counts it; once the counts are known
the provisional ids are remapped to frequency order in a second, chunked pass over the on-disk array.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import W2VError, storage_error
from .files import atomic_path
from .tokenize import ASCII_SPACE, iter_token_bytes

try:
    import numba
    _jit = numba.njit(cache=True, nogil=True)
except ImportError:  # numba is a dependency; without it the same loop runs as Python, slowly
    def _jit(f):
        return f

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
    def loads(cls, text: str) -> "Vocab":
        """Parse vocab.tsv's text; ValueError names the first bad line."""
        words, counts = [], []
        for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].isdigit() or not parts[0]:
                raise ValueError(f"line {n}: expected 'word<TAB>count'")
            words.append(parts[0])
            counts.append(int(parts[1]))
        counts = np.asarray(counts, dtype=np.int64)
        if len(counts) == 0 or np.any(np.diff(counts) > 0):
            raise ValueError("expected words by descending count" if len(counts) else "no words")
        return cls(words, counts)


def select(words: list[str], counts: np.ndarray, min_count: int, max_vocab: int | None) -> np.ndarray:
    """Indices of the kept words, by descending count; ties keep first-seen order (stable sort)."""
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= min_count]
    if max_vocab is not None:
        order = order[:max_vocab]
    return order


def merge(prior: Vocab, words: list[str], counts: np.ndarray, min_count: int,
          max_vocab: int | None) -> tuple[Vocab, np.ndarray]:
    """Continued training's vocabulary (--init): every word of the earlier run's `prior`, with its count plus its
    count in the new text, and the new text's other words that reach min_count in it (at most max_vocab words in
    all, the earlier ones always kept), by descending count. Returns it and each new-text word's index in it (-1:
    dropped)."""
    at = {w: i for i, w in enumerate(prior.words)}
    place = np.full(len(words), -1, dtype=np.int64)  # each new-text word's index among the candidates
    merged = prior.counts.astype(np.int64).copy()
    fresh = []
    for i, w in enumerate(words):
        j = at.get(w)
        if j is not None:
            place[i] = j
            merged[j] += counts[i]
        elif counts[i] >= min_count:
            fresh.append(i)
    fresh = np.asarray(fresh, dtype=np.int64)
    fresh = fresh[np.argsort(-counts[fresh], kind="stable")]
    if max_vocab is not None:
        fresh = fresh[:max(0, max_vocab - len(prior))]
    place[fresh] = len(prior) + np.arange(len(fresh))
    cand_words = list(prior.words) + [words[i] for i in fresh]
    cand_counts = np.concatenate([merged, counts[fresh].astype(np.int64)])
    order = np.argsort(-cand_counts, kind="stable")  # candidate index, by descending count
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    final = np.where(place >= 0, rank[np.maximum(place, 0)], -1)
    return Vocab([cand_words[i] for i in order], cand_counts[order]), final


def build(corpus, ids_path: str | os.PathLike, min_count: int = 5, max_vocab: int | None = None,
          lowercase: bool = False, encoding_errors: str = "strict", progress=None,
          prior: Vocab | None = None) -> tuple[Vocab, dict]:
    """Count and encode `corpus` (a path, or a list of paths read in order, a line break between files); write its
    int32 ids (SEPARATOR between lines) to `ids_path`. With `prior` (continued training), the vocabulary is
    merge()'s.

    Returns the vocabulary and stats (tokens, kept tokens, bytes, replaced bytes, seconds). `progress`, if
    given, is called with the bytes read so far (of the files as stored, compressed or not) after each block.
    """
    paths = list(corpus) if isinstance(corpus, (list, tuple)) else [corpus]
    name = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more files)"
    start = time.perf_counter()
    index = _Index()
    stats: dict = {"bytes": 0, "read": 0, "replaced_bytes": 0}
    ids_path = Path(ids_path)
    raw_path = ids_path.with_name(ids_path.name + ".raw")
    n_raw = 0
    try:
        with _writing(ids_path), open(raw_path, "wb") as raw:
            for k, path in enumerate(paths):
                part: dict = {}
                piece = b"\n"
                for piece in iter_token_bytes(path, lowercase, encoding_errors, stats=part):
                    ids = index.encode(piece)
                    raw.write(ids.tobytes())
                    n_raw += len(ids)
                    if progress is not None:
                        progress(stats["read"] + part.get("read", 0))
                if not piece.endswith(b"\n") and k + 1 < len(paths):  # a file's last line ends with the file
                    ids = index.encode(b"\n")
                    raw.write(ids.tobytes())
                    n_raw += len(ids)
                for key in stats:
                    stats[key] += part.get(key, 0)
        words, counts = index.words(), index.counts()
        del index
        n_tokens = int(counts.sum())
        if n_tokens == 0:
            raise W2VError(f"corpus {name} has no tokens (it is empty or whitespace only); pass a text file")
        # provisional id -> final id; the last entry is where the line breaks' -1 lands
        remap = np.full(len(words) + 1, -2, dtype=np.int32)  # -2: dropped word
        if prior is None:
            keep = select(words, counts, min_count, max_vocab)
            if len(keep) == 0:
                raise W2VError(f"no word occurs {min_count} times or more in {name} ({len(words)} "
                               f"distinct words, {n_tokens} tokens); lower --min-count")
            remap[keep] = np.arange(len(keep), dtype=np.int32)
            vocab = Vocab([words[i] for i in keep], counts[keep])
        else:
            vocab, final = merge(prior, words, counts, min_count, max_vocab)
            remap[:-1] = np.where(final >= 0, final, -2)
        remap[-1] = SEPARATOR
        n_out = _remap(raw_path, n_raw, remap, ids_path)
    finally:
        if raw_path.exists():
            raw_path.unlink()
    stats.update(tokens=n_tokens, kept_tokens=int(vocab.counts.sum()) if prior is None else
                 int(counts[final >= 0].sum()), distinct=len(words), seconds=time.perf_counter() - start, ids=n_out)
    return vocab, stats


def _remap(raw_path: Path, n_raw: int, remap: np.ndarray, ids_path: Path) -> int:
    """The provisional ids in raw_path, remapped to the vocabulary's (dropped words removed), into ids_path;
    returns how many ids it holds."""
    provisional = np.memmap(raw_path, dtype=np.int32, mode="r", shape=(n_raw,))
    n_out = 0
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as out:
        for s in range(0, n_raw, REMAP_CHUNK):
            new = remap[provisional[s:s + REMAP_CHUNK]]
            new = new[new != -2]  # dropped words vanish before windows are formed, as in word2vec.c
            if s + REMAP_CHUNK >= n_raw:  # line breaks at the end separate nothing: a final newline or not, the
                end = len(new)  # same ids
                while end and new[end - 1] == SEPARATOR:
                    end -= 1
                new = new[:end]
            out.write(new.tobytes())
            n_out += len(new)
    del provisional
    return n_out


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write of the provisional ids (a full disk) as a one-line error naming the ids file."""
    try:
        yield
    except OSError as e:
        raise storage_error("write", path, e) from None


class _Index:
    """word (UTF-8 bytes) -> provisional id in first-seen order, with counts: an open-addressing hash table
    (linear probing, load <= 1/2) whose lookups run compiled, over a whole block of bytes per call.

    Why not a dict: a Python dict lookup per token was 60% of the pass, about 110 ns a token. Compiled,
    splitting, hashing and counting cost about as much as reading the file.
    """

    def __init__(self, slots: int = 1 << 16, arena_bytes: int = 1 << 20):
        self.table = np.full(slots, -1, dtype=np.int32)  # slot -> provisional id, -1: empty
        self.hashes = np.zeros(slots // 2, dtype=np.uint64)  # per id: its hash, its bytes in the arena,
        self.starts = np.zeros(slots // 2, dtype=np.int64)  # and how often it occurred
        self.lengths = np.zeros(slots // 2, dtype=np.int32)
        self.count = np.zeros(slots // 2, dtype=np.int64)
        self.arena = np.zeros(arena_bytes, dtype=np.uint8)  # the words' bytes, one after another
        self.n_words = self.arena_used = 0
        self.out = np.zeros(0, dtype=np.int32)

    def encode(self, piece: bytes) -> np.ndarray:
        """The provisional ids of the tokens of `piece`, -1 for each line break (a view, valid until the
        next call)."""
        buf = np.frombuffer(piece, dtype=np.uint8)
        if self.out.size < buf.size:  # a piece of n bytes holds at most n tokens and line breaks
            self.out = np.zeros(buf.size, dtype=np.int32)
        pos = n_out = 0
        while True:
            pos, n_out, self.n_words, self.arena_used, full = _encode(
                buf, pos, self.out, n_out, _BYTE_KIND, self.table, self.hashes, self.starts, self.lengths,
                self.count, self.n_words, self.arena, self.arena_used)
            if not full:
                return self.out[:n_out]
            self._grow(need_bytes=buf.size - pos)  # the pending token is no longer than the rest

    def _grow(self, need_bytes: int) -> None:
        if self.n_words == self.hashes.size:  # double the table, keeping the load at most 1/2
            self.table = np.full(2 * self.table.size, -1, dtype=np.int32)
            for name in ("hashes", "starts", "lengths", "count"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros_like(old)]))
            _rehash(self.table, self.hashes, self.n_words)
        if self.arena.size - self.arena_used < need_bytes:
            self.arena = np.concatenate([self.arena, np.zeros(max(self.arena.size, need_bytes), np.uint8)])

    def words(self) -> list[str]:
        arena, starts, lengths = self.arena.tobytes(), self.starts.tolist(), self.lengths.tolist()
        return [arena[s:s + n].decode("utf-8") for s, n in zip(starts[:self.n_words], lengths[:self.n_words])]

    def counts(self) -> np.ndarray:
        return self.count[:self.n_words].copy()


# byte -> 0: part of a token, 1: separates tokens, 2: line break
_BYTE_KIND = np.zeros(256, dtype=np.uint8)
_BYTE_KIND[list(ASCII_SPACE)] = 1
_BYTE_KIND[ord("\n")] = 2
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@_jit
def _slot(h, mask):
    """A hash's first slot (both lookups and rehashing must agree): its high bits folded into the low ones."""
    return np.int64((h ^ (h >> np.uint64(32))) & np.uint64(mask))


@_jit
def _encode(buf, pos, out, n_out, kind, table, hashes, starts, lengths, count, n_words, arena, arena_used):
    """Split buf[pos:] into tokens and line breaks, look each token up (adding new ones), count it and
    write its id to out[n_out:]. Stops before a new word when the table or the arena is full (full=True;
    grow them and call again from the returned pos)."""
    n = buf.size
    mask = table.size - 1
    while pos < n:
        k = kind[buf[pos]]
        if k == 1:
            pos += 1
            continue
        if k == 2:
            out[n_out] = -1
            n_out += 1
            pos += 1
            continue
        end = pos
        h = _FNV_OFFSET  # FNV-1a over the token's bytes
        while end < n and kind[buf[end]] == 0:
            h = (h ^ np.uint64(buf[end])) * _FNV_PRIME
            end += 1
        length = end - pos
        slot = _slot(h, mask)
        w = table[slot]
        while w >= 0:
            if hashes[w] == h and lengths[w] == length:
                s = starts[w]
                same = True
                for i in range(length):
                    if arena[s + i] != buf[pos + i]:
                        same = False
                        break
                if same:
                    break
            slot = (slot + 1) & mask
            w = table[slot]
        if w < 0:
            if n_words == hashes.size or arena_used + length > arena.size:
                return pos, n_out, n_words, arena_used, True
            w = n_words
            n_words += 1
            table[slot] = w
            hashes[w] = h
            starts[w] = arena_used
            lengths[w] = length
            arena[arena_used:arena_used + length] = buf[pos:end]
            arena_used += length
        count[w] += 1
        out[n_out] = w
        n_out += 1
        pos = end
    return pos, n_out, n_words, arena_used, False


@_jit
def _rehash(table, hashes, n_words):
    mask = table.size - 1
    for w in range(n_words):
        h = hashes[w]
        slot = _slot(h, mask)
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = w


def load_ids(path: str | os.PathLike) -> np.ndarray:
    """The encoded corpus, memory-mapped (read-only): a corpus larger than RAM streams from disk."""
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, dtype=np.int32)
    return np.memmap(path, dtype=np.int32, mode="r", shape=(size // 4,))
