"""Vocabulary: word counts in one streaming pass, --min-count / --max-vocab, descending-count order.

The same pass encodes the corpus as int32 ids, written straight to disk, so the corpus is never held
as Python strings: a compiled loop splits each block of UTF-8 bytes (tokenize.iter_token_bytes), gives
each new word the next provisional id in a hash table (_Index) and counts it; once the counts are known
the provisional ids are remapped to frequency order in a second, chunked pass over the on-disk array.

The table of distinct words may be bounded (build's `memory`, --vocab-memory). When it would grow past the bound
the count goes on exactly in partitions spilled to disk and the text is read a second time (_two_passes): the
same vocabulary, counts and ids, without ever holding every distinct word or a provisional id per token.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import W2VError, storage_error
from .files import atomic_path
from .tokenize import ASCII_SPACE, describe, iter_token_bytes

try:
    import numba
    _jit = numba.njit(cache=True, nogil=True)
except ImportError:  # numba is a dependency; without it the same loop runs as Python, slowly
    def _jit(f):
        return f

SEPARATOR = -1  # id stored between lines in the encoded corpus; windows never cross it
DROPPED = -2  # a word that is not in the vocabulary, removed before corpus.ids is written
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
          prior: Vocab | None = None, memory: int | None = None) -> tuple[Vocab, dict]:
    """Count and encode `corpus` (a path, or a list of paths read in order, a line break between files); write its
    int32 ids (SEPARATOR between lines) to `ids_path`. With `prior` (continued training), the vocabulary is
    merge()'s. `memory` (bytes; None: no bound) bounds the table of distinct words: where it would pass it, the
    counting goes on in partitions spilled to disk beside ids_path and the text is read a second time to encode
    it (_two_passes), with the same result.

    Returns the vocabulary and stats (tokens, kept tokens, distinct words, bytes, replaced bytes, seconds, passes,
    bytes spilled). `progress`, if given, is called with the bytes read so far (of the files as stored, compressed
    or not) after each block, from 0 again in a second pass.
    """
    paths = list(corpus) if isinstance(corpus, (list, tuple)) else [corpus]
    name = describe(paths)
    start = time.perf_counter()
    stats: dict = {"bytes": 0, "read": 0, "replaced_bytes": 0}
    ids_path = Path(ids_path)
    raw_path = ids_path.with_name(ids_path.name + ".raw")
    spill_dir = ids_path.with_name(ids_path.name + ".spill")
    shutil.rmtree(spill_dir, ignore_errors=True)  # a killed run's
    pieces = _pieces(paths, lowercase, encoding_errors, stats, progress)
    index = _Index(limit=memory)
    try:
        n_raw, rest = _first_pass(pieces, index, raw_path, ids_path)
        if rest is None:
            vocab, remap, found = _one_pass(index, min_count, max_vocab, prior, name)
            del index  # (the table goes before the remap's chunks come)
            found["ids"] = _remap(raw_path, n_raw, remap, ids_path)
        else:  # the distinct words outgrew `memory`
            raw_path.unlink()
            spill = _spill_all(index, rest, pieces, spill_dir)
            del index
            # the inputs are files (standard input and the API's sentences are copied into the run directory)
            reread = (lambda: _pieces(paths, lowercase, encoding_errors, {}, progress))
            vocab, found = _two_passes(spill, memory, reread, ids_path, min_count, max_vocab, prior, name)
    finally:
        raw_path.unlink(missing_ok=True)
        shutil.rmtree(spill_dir, ignore_errors=True)
    stats.update(found, seconds=time.perf_counter() - start)
    return vocab, stats


def _pieces(paths: list, lowercase: bool, encoding_errors: str, stats: dict, progress) -> Iterator[bytes]:
    """The inputs' pieces of UTF-8 bytes (tokenize.iter_token_bytes) one after another, a line break between two
    files where the first does not end with one; their stats summed into `stats`."""
    for key in ("bytes", "read", "replaced_bytes"):
        stats.setdefault(key, 0)
    for k, path in enumerate(paths):
        part: dict = {}
        piece = b"\n"
        for piece in iter_token_bytes(path, lowercase, encoding_errors, stats=part):
            yield piece
            if progress is not None:
                progress(stats["read"] + part.get("read", 0))
        if not piece.endswith(b"\n") and k + 1 < len(paths):  # a file's last line ends with the file
            yield b"\n"
        for key in ("bytes", "read", "replaced_bytes"):
            stats[key] += part.get(key, 0)


def _first_pass(pieces, index: "_Index", raw_path: Path, ids_path: Path) -> tuple[int, bytes | None]:
    """Count and encode into raw_path (provisional ids) until the pieces end, or until `index` would pass its
    memory limit: returns the ids written and None, or the rest of the piece it stopped in."""
    n_raw = 0
    with _writing(ids_path), open(raw_path, "wb") as raw:
        for piece in pieces:
            try:
                ids = index.encode(piece)
            except _Full as full:
                return n_raw, piece[full.pos:]
            raw.write(ids.tobytes())
            n_raw += len(ids)
    return n_raw, None


def _one_pass(index: "_Index", min_count: int, max_vocab: int | None, prior: Vocab | None,
              name) -> tuple[Vocab, np.ndarray, dict]:
    """The vocabulary of a first pass that counted everything, the remap of its provisional ids, and stats."""
    counts = index.count[:index.n_words]  # (W,) by provisional id: first-seen order
    n_tokens = int(counts.sum())
    if n_tokens == 0:
        raise W2VError(f"corpus {name} has no tokens (it is empty or whitespace only); pass a text file")
    in_prior = _found(_index_of(prior.words), index) >= 0 if prior is not None else None
    vocab, kept, final = _choose(counts, index.words, min_count, max_vocab, prior, in_prior,
                                 f"{name} ({index.n_words} distinct words, {n_tokens} tokens)")
    # provisional id -> final id; the last entry is where the line breaks' -1 lands
    remap = np.full(index.n_words + 1, DROPPED, dtype=np.int32)
    remap[kept] = final
    remap[-1] = SEPARATOR
    return vocab, remap, dict(tokens=n_tokens, kept_tokens=int(counts[kept].sum()), distinct=index.n_words, passes=1,
                              spilled=0)


def _choose(counts: np.ndarray, words_of, min_count: int, max_vocab: int | None, prior: Vocab | None,
            in_prior: np.ndarray | None, corpus: str) -> tuple[Vocab, np.ndarray, np.ndarray]:
    """The vocabulary from the candidate words' counts (W,), in first-seen order: select's, or merge's with `prior`
    (in_prior: (W,) bool, which are its words). Returns it, the candidates kept and their ids in it (both (K,)).
    words_of(indices) gives those candidates' words: only the ones needed are made into strings. `corpus` names the
    text for the error."""
    if prior is None:
        kept = select(None, counts, min_count, max_vocab)
        if len(kept) == 0:
            raise W2VError(f"no word occurs {min_count} times or more in {corpus}; lower --min-count")
        return Vocab(words_of(kept), counts[kept]), kept, np.arange(len(kept), dtype=np.int32)
    # merge ignores the words of neither kind, so giving it only the others changes nothing
    cand = np.flatnonzero((counts >= min_count) | in_prior)
    vocab, final = merge(prior, words_of(cand), counts[cand], min_count, max_vocab)
    return vocab, cand[final >= 0], final[final >= 0].astype(np.int32)


def _remap(raw_path: Path, n_raw: int, remap: np.ndarray, ids_path: Path) -> int:
    """The provisional ids in raw_path, remapped to the vocabulary's (dropped words removed), into ids_path;
    returns how many ids it holds."""
    provisional = np.memmap(raw_path, dtype=np.int32, mode="r", shape=(n_raw,))
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as f:
        out = _IdsFile(f)
        for s in range(0, n_raw, REMAP_CHUNK):
            new = remap[provisional[s:s + REMAP_CHUNK]]
            out.write(new[new != DROPPED])  # dropped words vanish before windows are formed, as in word2vec.c
    del provisional
    return out.n


class _IdsFile:
    """corpus.ids as it is written. Line breaks at the end separate nothing (a final newline or not, the same ids):
    separators are held back until an id follows them."""

    def __init__(self, f):
        self.f, self.n, self.held = f, 0, 0

    def write(self, ids: np.ndarray) -> None:
        """ids: (n,) int32, vocabulary ids and SEPARATORs."""
        end = len(ids)
        while end and ids[end - 1] == SEPARATOR:
            end -= 1
        if end == 0:
            self.held += len(ids)
            return
        if self.held:
            self.f.write(np.full(self.held, SEPARATOR, dtype=np.int32).tobytes())
        self.f.write(ids[:end].tobytes())
        self.n += self.held + end
        self.held = len(ids) - end


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

    PER_WORD = ("hashes", "starts", "lengths", "count")  # the arrays with an entry per word (id)

    def __init__(self, slots: int = 1 << 16, arena_bytes: int = 1 << 20, limit: int | None = None):
        self.table = np.full(slots, -1, dtype=np.int32)  # slot -> provisional id, -1: empty
        self.hashes = np.zeros(slots // 2, dtype=np.uint64)  # per id: its hash, its bytes in the arena,
        self.starts = np.zeros(slots // 2, dtype=np.int64)  # and how often it occurred
        self.lengths = np.zeros(slots // 2, dtype=np.int32)
        self.count = np.zeros(slots // 2, dtype=np.int64)
        self.arena = np.zeros(arena_bytes, dtype=np.uint8)  # the words' bytes, one after another
        self.n_words = self.arena_used = 0
        self.out = np.zeros(0, dtype=np.int32)
        self.limit = limit  # bytes the table may grow to (over_limit); None: no bound

    def encode(self, piece: bytes, spill=None) -> np.ndarray:
        """The provisional ids of the tokens of `piece`, -1 for each line break (a view, valid until the
        next call). Where growing would pass `limit`: spill(self), then the table is emptied and goes on (the
        ids are then meaningless), or without `spill` raise _Full at the first token not counted."""
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
            need = buf.size - pos  # the pending token is no longer than the rest
            if not self.over_limit(need):
                self._grow(need_bytes=need)
            elif spill is None:
                raise _Full(pos)
            else:
                spill(self)
                self.clear()

    def _grow(self, need_bytes: int) -> None:
        if self.n_words == self.hashes.size:  # double the table, keeping the load at most 1/2
            self.table = np.full(2 * self.table.size, -1, dtype=np.int32)
            for name in self.PER_WORD:
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros_like(old)]))
            _rehash(self.table, self.hashes, self.n_words)
        if self.arena.size - self.arena_used < need_bytes:
            self.arena = np.concatenate([self.arena, np.zeros(max(self.arena.size, need_bytes), np.uint8)])

    def over_limit(self, need_bytes: int) -> bool:
        """Whether _grow(need_bytes) would pass `limit`: the arrays as it leaves them, and RESERVE_PER_WORD for each
        word they have room for (what choosing the vocabulary or writing a spill takes beside them)."""
        if self.limit is None:
            return False
        per_word = 2 * self.table.itemsize + sum(getattr(self, a).itemsize for a in self.PER_WORD) + RESERVE_PER_WORD
        room = self.hashes.size * (2 if self.n_words == self.hashes.size else 1)
        arena = self.arena.size
        if arena - self.arena_used < need_bytes:
            arena += max(arena, need_bytes)
        return room * per_word + arena > self.limit

    def nbytes(self) -> int:
        """The bytes its arrays hold."""
        return self.table.nbytes + self.arena.nbytes + sum(getattr(self, a).nbytes for a in self.PER_WORD)

    def clear(self) -> None:
        """Forget every word, keeping the room."""
        self.table.fill(-1)
        self.count[:self.n_words] = 0
        self.n_words = self.arena_used = 0

    def words(self, ids: np.ndarray | None = None) -> list[str]:
        """The words by provisional id, or those of `ids` (an array of provisional ids)."""
        ids = slice(0, self.n_words) if ids is None else ids
        arena = self.arena[:self.arena_used].tobytes()  # slices of one bytes object decode fastest
        return [arena[s:s + n].decode("utf-8") for s, n in zip(self.starts[ids].tolist(), self.lengths[ids].tolist())]

    def counts(self) -> np.ndarray:
        return self.count[:self.n_words].copy()

    def keys(self, flush: int) -> np.ndarray:
        """(n_words,) int64: the words' first-seen order across the tables of a spill, this one its flush-th."""
        return (np.int64(flush) << np.int64(32)) + np.arange(self.n_words, dtype=np.int64)

    def records(self, ids: np.ndarray, keys: np.ndarray) -> tuple:
        """The words `ids` as spill records: their hashes, counts, first-seen keys (from keys(...)), lengths, and
        their bytes one after another."""
        lengths = self.lengths[ids]
        packed = np.empty(int(lengths.sum()), dtype=np.uint8)
        _pack(self.arena, self.starts, ids, lengths, packed)
        return self.hashes[ids], self.count[ids], keys[ids], lengths, packed


class _Full(Exception):
    """_Index.encode without a spill: growing would pass the table's limit, at byte `pos` of the piece."""

    def __init__(self, pos: int):
        super().__init__(pos)
        self.pos = pos


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
def _probe(table, hashes, starts, lengths, arena, h, buf, pos, length):
    """The slot of the word buf[pos:pos + length] (hash h) in the table, or the empty slot where it would go."""
    mask = table.size - 1
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
                return slot
        slot = (slot + 1) & mask
        w = table[slot]
    return slot


@_jit
def _insert(table, slot, w, h, hashes, starts, lengths, arena, arena_used, src, pos, length):
    """Word w, src[pos:pos + length] of hash h, into the empty slot, its bytes at arena[arena_used:]; returns where
    the arena's bytes now end."""
    table[slot] = w
    hashes[w] = h
    starts[w] = arena_used
    lengths[w] = length
    arena[arena_used:arena_used + length] = src[pos:pos + length]
    return arena_used + length


@_jit
def _token(buf, pos, kind):
    """The end of the token that starts at buf[pos], and its hash (FNV-1a over its bytes)."""
    end = pos
    h = _FNV_OFFSET
    while end < buf.size and kind[buf[end]] == 0:
        h = (h ^ np.uint64(buf[end])) * _FNV_PRIME
        end += 1
    return end, h


@_jit
def _encode(buf, pos, out, n_out, kind, table, hashes, starts, lengths, count, n_words, arena, arena_used):
    """Split buf[pos:] into tokens and line breaks, look each token up (adding new ones), count it and
    write its id to out[n_out:]. Stops before a new word when the table or the arena is full (full=True;
    grow them and call again from the returned pos)."""
    n = buf.size
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
        end, h = _token(buf, pos, kind)
        length = end - pos
        slot = _probe(table, hashes, starts, lengths, arena, h, buf, pos, length)
        w = table[slot]
        if w < 0:
            if n_words == hashes.size or arena_used + length > arena.size:
                return pos, n_out, n_words, arena_used, True
            w = n_words
            n_words += 1
            arena_used = _insert(table, slot, w, h, hashes, starts, lengths, arena, arena_used, buf, pos, length)
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


# -- past the memory bound: counting in partitions spilled to disk, then a second pass that only looks words up ----

SPILL_BITS = 8  # a full table is written out to 2 ** SPILL_BITS partition files, by these bits of each word's hash
# bytes a word of a bounded table's room may need beside the table: the vocabulary's choice (select's sort: -counts,
# the order, the kept ones; the remap) or a spill's (keys, partitions and their order)
RESERVE_PER_WORD = 40


def _spill_all(index: _Index, rest: bytes, pieces, spill_dir: Path) -> "_Spill":
    """A count that outgrew index's limit, gone on: the words counted so far, then those of `rest` and the other
    pieces table by table, written into partition files by hash, each word with its count and a key of its first
    occurrence."""
    spill = _Spill(spill_dir, depth=0)
    spill.write(index)
    index.clear()
    index.encode(rest, spill.write)
    for piece in pieces:
        index.encode(piece, spill.write)
    spill.write(index)
    return spill


def _two_passes(spill: "_Spill", limit: int, reread, ids_path: Path, min_count: int, max_vocab: int | None,
                prior: Vocab | None, name) -> tuple[Vocab, dict]:
    """The count of _spill_all, finished exactly: each partition is counted alone within `limit` (all of a word's
    records are in one) and its words that reach min_count (or are prior's) kept; the vocabulary is chosen from those
    as from one pass, and the text, read again (reread()), is encoded by looking its words up in a table of the kept
    ones only."""
    prior_index = _index_of(prior.words) if prior is not None else None

    def wanted(tally: _Tally) -> np.ndarray:
        keep = tally.count[:tally.n_words] >= min_count
        if prior_index is not None:
            keep |= _found(prior_index, tally) >= 0
        return keep

    cands, total = _kept(spill, limit, wanted)
    order = np.argsort(cands.first[:cands.n_words])  # (C,) the candidates in first-seen order
    counts = cands.count[order]
    in_prior = (_found(prior_index, cands) >= 0)[order] if prior_index is not None else None
    vocab, kept, final = _choose(counts, lambda ids: cands.words(order[ids]), min_count, max_vocab, prior, in_prior,
                                 f"{name} ({total['distinct']} distinct words, {total['tokens']} tokens)")
    value = np.full(cands.n_words, DROPPED, dtype=np.int32)  # a candidate's id in the vocabulary
    value[order[kept]] = final
    n_ids = _encode_kept(reread(), cands, value, ids_path, total["tokens"], name)
    return vocab, dict(tokens=total["tokens"], kept_tokens=int(counts[kept].sum()), distinct=total["distinct"],
                       passes=2, spilled=spill.bytes, ids=n_ids)


def _kept(spill: "_Spill", limit: int, wanted) -> tuple["_Tally", dict]:
    """The words of a spill, each partition counted alone within `limit` (all of a word's records are in one), that
    wanted(tally) keeps ((n_words,) bool), gathered in one table; and the distinct words and tokens of all of them."""
    cands, total = _Tally(), {"distinct": 0, "tokens": 0}

    def keep(tally: _Tally) -> None:
        cands.add(tally.records(np.flatnonzero(wanted(tally)), tally.keys(0)))
        total["distinct"] += tally.n_words
        total["tokens"] += int(tally.count[:tally.n_words].sum())

    _count_spilled(spill.folder, 0, limit, keep)
    return cands, total


class _Spill:
    """Tables written out to 2 ** SPILL_BITS partition files in `folder`, each word into the file that its hash's
    bits [64 - SPILL_BITS * (depth + 1), 64 - SPILL_BITS * depth) name; a file holds a block per table written."""

    def __init__(self, folder: Path, depth: int):
        self.folder, self.depth, self.flushes, self.bytes = folder, depth, 0, 0

    def write(self, index: _Index) -> None:
        n = index.n_words
        if n == 0:
            return
        keys = index.keys(self.flushes)
        self.flushes += 1
        shift, mask = np.uint64(64 - SPILL_BITS * (self.depth + 1)), np.uint64((1 << SPILL_BITS) - 1)
        part = ((index.hashes[:n] >> shift) & mask).astype(np.uint16)  # (n,) each word's partition
        order = np.argsort(part, kind="stable")  # (n,) ids by partition
        sizes = np.bincount(part, minlength=1 << SPILL_BITS)
        ends = np.cumsum(sizes)
        for p, (a, b) in enumerate(zip((ends - sizes).tolist(), ends.tolist())):
            if a == b:
                continue
            records = index.records(order[a:b], keys)
            path = self.folder / f"{p:02x}"
            try:
                self.folder.mkdir(exist_ok=True)
                with open(path, "ab") as f:
                    f.write(np.array([b - a, records[-1].size], dtype=np.int64).tobytes())
                    for array in records:
                        f.write(array.tobytes())
            except OSError as e:
                raise storage_error("write", path, e) from None
            self.bytes += 16 + sum(array.nbytes for array in records)


def _read_spill(path: Path) -> Iterator[tuple]:
    """The blocks of a partition file, each as records (_Index.records)."""
    try:
        with open(path, "rb") as f:
            while head := f.read(16):
                n, size = np.frombuffer(head, dtype=np.int64).tolist()
                data = f.read(28 * n + size)
                yield (np.frombuffer(data, np.uint64, n), np.frombuffer(data, np.int64, n, 8 * n),
                       np.frombuffer(data, np.int64, n, 16 * n), np.frombuffer(data, np.int32, n, 24 * n),
                       np.frombuffer(data, np.uint8, size, 28 * n))
    except OSError as e:
        raise storage_error("read", path, e) from None


def _count_spilled(folder: Path, depth: int, limit: int | None, visit) -> None:
    """Count each partition file of `folder` alone, in a table bounded by `limit`, and give the table to visit(),
    deleting the file. A file whose words do not fit is split again by the hash's next SPILL_BITS bits and its parts
    counted in turn; past the hash's 64 bits a table grows as it must (words of one hash cannot be told apart)."""
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        sub = _Spill(path.with_name(path.name + ".d"), depth + 1)
        deeper = SPILL_BITS * (depth + 2) <= 64
        tally = _Tally(limit)
        for records in _read_spill(path):
            tally.add(records, sub.write if deeper else None)
        path.unlink()
        if sub.flushes:  # the rest of its words go where the others went
            sub.write(tally)
        else:
            visit(tally)
        del tally  # before the next one, or the parts, are counted
        if sub.flushes:
            _count_spilled(sub.folder, depth + 1, limit, visit)


class _Tally(_Index):
    """Spill records summed by word: its counts added, the earliest of its first-seen keys kept."""

    PER_WORD = _Index.PER_WORD + ("first",)

    def __init__(self, limit: int | None = None):
        super().__init__(limit=limit)
        self.first = np.zeros(self.hashes.size, dtype=np.int64)

    def add(self, records: tuple, spill=None) -> None:
        """Add records (_Index.records). Where growing would pass `limit`: spill(self), then empty the table."""
        hashes, counts, first, lengths, packed = records
        starts = np.cumsum(lengths, dtype=np.int64) - lengths  # (n,) each record's word in `packed`
        i = 0
        while True:
            i, self.n_words, self.arena_used, full = _tally(
                hashes, counts, first, starts, lengths, packed, i, self.table, self.hashes, self.starts,
                self.lengths, self.count, self.first, self.n_words, self.arena, self.arena_used)
            if not full:
                return
            if spill is not None and self.over_limit(int(lengths[i])):
                spill(self)
                self.clear()
            else:
                self._grow(int(lengths[i]))

    def keys(self, flush: int) -> np.ndarray:
        return self.first[:self.n_words]


def _index_of(words: list[str]) -> _Index:
    """A table of `words` (distinct, without whitespace): each one's id is its place in the list."""
    index = _Index()
    for s in range(0, len(words), 1 << 16):
        index.encode(" ".join(words[s:s + (1 << 16)]).encode("utf-8"))
    return index


def _found(index: _Index, words: _Index) -> np.ndarray:
    """(words.n_words,) int32: each word of the table `words` looked up in `index`: its id there, -1 if absent."""
    out = np.empty(words.n_words, dtype=np.int32)
    _find_each(index.table, index.hashes, index.starts, index.lengths, index.arena, words.hashes, words.starts,
               words.lengths, words.arena, out)
    return out


def _encode_kept(pieces, table: _Index, value: np.ndarray, ids_path: Path, tokens: int, name) -> int:
    """The second pass: the pieces' tokens looked up in `table` (no word is added) and written to ids_path as
    value[id], a word not in it (or of value DROPPED) dropped; returns the ids written. The first pass counted
    `tokens`: another number means that the text changed, and nothing is written."""
    out = np.zeros(0, dtype=np.int32)
    n_tokens = 0
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as f:
        ids = _IdsFile(f)
        for piece in pieces:
            buf = np.frombuffer(piece, dtype=np.uint8)
            if out.size < buf.size:
                out = np.zeros(buf.size, dtype=np.int32)
            n_out, n = _lookup(buf, out, _BYTE_KIND, table.table, table.hashes, table.starts, table.lengths,
                               table.arena, value, False)
            n_tokens += n
            ids.write(out[:n_out])
        if n_tokens != tokens:
            raise W2VError(f"corpus {name} changed while it was read twice ({tokens} tokens, then {n_tokens}); "
                           "train on text that does not change")
    return ids.n


@_jit
def _tally(r_hashes, r_counts, r_first, r_starts, r_lengths, r_bytes, i, table, hashes, starts, lengths, count,
           first, n_words, arena, arena_used):
    """Add records i.. to the table: a word's count added, its smallest first-seen key kept. Stops before a new
    word when the table or the arena is full (full=True; grow them and call again from the returned i)."""
    while i < r_hashes.size:
        h, pos, length = r_hashes[i], r_starts[i], r_lengths[i]
        slot = _probe(table, hashes, starts, lengths, arena, h, r_bytes, pos, length)
        w = table[slot]
        if w < 0:
            if n_words == hashes.size or arena_used + length > arena.size:
                return i, n_words, arena_used, True
            w = n_words
            n_words += 1
            arena_used = _insert(table, slot, w, h, hashes, starts, lengths, arena, arena_used, r_bytes, pos, length)
            count[w] = 0
            first[w] = r_first[i]
        count[w] += r_counts[i]
        first[w] = min(first[w], r_first[i])
        i += 1
    return i, n_words, arena_used, False


@_jit
def _lookup(buf, out, kind, table, hashes, starts, lengths, arena, value, keep_dropped):
    """Split buf into tokens and line breaks as _encode does, without adding words: out gets value[id] of each token
    in the table and -1 for each line break; for a token not in it (or of value DROPPED), DROPPED if keep_dropped,
    else nothing. Returns how many it wrote and how many tokens it read."""
    pos = n_out = n_tokens = 0
    while pos < buf.size:
        k = kind[buf[pos]]
        if k == 0:
            end, h = _token(buf, pos, kind)
            w = table[_probe(table, hashes, starts, lengths, arena, h, buf, pos, end - pos)]
            if w >= 0 and value[w] != DROPPED:
                out[n_out] = value[w]
                n_out += 1
            elif keep_dropped:
                out[n_out] = DROPPED
                n_out += 1
            n_tokens += 1
            pos = end
            continue
        if k == 2:
            out[n_out] = -1
            n_out += 1
        pos += 1
    return n_out, n_tokens


@_jit
def _find_each(table, hashes, starts, lengths, arena, q_hashes, q_starts, q_lengths, q_arena, out):
    """out[i]: the id of the i-th query word (q_arena[q_starts[i]:][:q_lengths[i]]) in the table, -1 if absent."""
    for i in range(out.size):
        out[i] = table[_probe(table, hashes, starts, lengths, arena, q_hashes[i], q_arena, q_starts[i],
                              q_lengths[i])]


@_jit
def _pack(arena, starts, ids, lengths, out):
    """The bytes of words ids (of lengths `lengths`), one after another, into out."""
    o = 0
    for j in range(ids.size):
        s, n = starts[ids[j]], lengths[j]
        out[o:o + n] = arena[s:s + n]
        o += n


def load_ids(path: str | os.PathLike) -> np.ndarray:
    """The encoded corpus, memory-mapped (read-only): a corpus larger than RAM streams from disk."""
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, dtype=np.int32)
    return np.memmap(path, dtype=np.int32, mode="r", shape=(size // 4,))
