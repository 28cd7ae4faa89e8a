"""Counting past a memory bound (`--vocab-memory`, `phrases --memory`): partitions spilled to disk.

A WordTable that would grow past its bound is written out to 2 ** SPILL_BITS partition files, each word into the one
its hash names, and emptied; the count goes on. All of a word's records are then in one partition, so each partition
counted alone (a Tally) gives its words' exact counts, and the earliest of their first-seen keys, within the bound:
a partition that does not fit is split again by the hash's next bits.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

import numpy as np

from ..errors import storage_error
from .table import WordTable, insert, jit, probe

SPILL_BITS = 8  # a full table is written out to 2 ** SPILL_BITS partition files, by these bits of each word's hash
HASH_BITS = 64  # the bits of a hash, the highest SPILL_BITS naming the partitions, the next ones a partition's parts
HEAD_BYTES = 16  # a block's head in a partition file: its records and their words' bytes, two int64
RECORD_BYTES = 28  # a record's fixed part: hash (uint64), count and first-seen key (int64), length (int32)


def spill_all(index: WordTable, rest: bytes, pieces, spill_dir: Path) -> Spill:
    """A count that outgrew index's limit, gone on: the words counted so far, then those of `rest` and the other
    pieces table by table, written into partition files by hash, each word with its count and a key of its first
    occurrence."""
    spill = Spill(spill_dir, depth=0)
    spill.write(index)
    index.clear()
    index.encode(rest, spill.write)
    for piece in pieces:
        index.encode(piece, spill.write)
    spill.write(index)
    return spill


def kept_words(spill: Spill, limit: int, wanted) -> tuple[Tally, dict]:
    """The words of a spill, each partition counted alone within `limit` (all of a word's records are in one), that
    wanted(tally) keeps ((n_words,) bool), gathered in one table; and the distinct words and tokens of all of them."""
    cands, total = Tally(), {"distinct": 0, "tokens": 0}

    def keep(tally: Tally) -> None:
        cands.add(tally.records(np.flatnonzero(wanted(tally)), tally.keys(0)))
        total["distinct"] += tally.n_words
        total["tokens"] += int(tally.count[:tally.n_words].sum())

    count_spilled(spill.folder, 0, limit, keep)
    return cands, total


class Spill:
    """Tables written out to 2 ** SPILL_BITS partition files in `folder`, each word into the file that its hash's
    bits [HASH_BITS - SPILL_BITS * (depth + 1), HASH_BITS - SPILL_BITS * depth) name; a file holds a block per table
    written."""

    def __init__(self, folder: Path, depth: int):
        self.folder, self.depth, self.flushes, self.bytes = folder, depth, 0, 0

    def write(self, index: WordTable) -> None:
        n = index.n_words
        if n == 0:
            return
        keys = index.keys(self.flushes)
        self.flushes += 1
        shift, mask = np.uint64(HASH_BITS - SPILL_BITS * (self.depth + 1)), np.uint64((1 << SPILL_BITS) - 1)
        part = ((index.hashes[:n] >> shift) & mask).astype(np.uint16)  # (n,) each word's partition
        order = np.argsort(part, kind="stable")  # (n,) ids by partition
        sizes = np.bincount(part, minlength=1 << SPILL_BITS)
        ends = np.cumsum(sizes)
        for p, (a, b) in enumerate(zip((ends - sizes).tolist(), ends.tolist())):
            if a < b:
                self._append(self.folder / f"{p:02x}", index.records(order[a:b], keys))

    def _append(self, path: Path, records: tuple) -> None:
        """One block of records (WordTable.records) at the end of a partition file."""
        try:
            self.folder.mkdir(exist_ok=True)
            with open(path, "ab") as f:
                f.write(np.array([len(records[0]), records[-1].size], dtype=np.int64).tobytes())
                for array in records:
                    f.write(array.tobytes())
        except OSError as e:
            raise storage_error("write", path, e) from None
        self.bytes += HEAD_BYTES + sum(array.nbytes for array in records)


def read_spill(path: Path) -> Iterator[tuple]:
    """The blocks of a partition file, each as records (WordTable.records)."""
    try:
        with open(path, "rb") as f:
            while head := f.read(HEAD_BYTES):
                n, size = np.frombuffer(head, dtype=np.int64).tolist()
                data = f.read(RECORD_BYTES * n + size)
                yield (np.frombuffer(data, np.uint64, n), np.frombuffer(data, np.int64, n, 8 * n),
                       np.frombuffer(data, np.int64, n, 16 * n), np.frombuffer(data, np.int32, n, 24 * n),
                       np.frombuffer(data, np.uint8, size, RECORD_BYTES * n))
    except OSError as e:
        raise storage_error("read", path, e) from None


def count_spilled(folder: Path, depth: int, limit: int | None, visit) -> None:
    """Count each partition file of `folder` alone, in a table bounded by `limit`, and give the table to visit(),
    deleting the file. A file whose words do not fit is split again by the hash's next SPILL_BITS bits and its parts
    counted in turn; past the hash's 64 bits a table grows as it must (words of one hash cannot be told apart)."""
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        sub = Spill(path.with_name(path.name + ".d"), depth + 1)
        deeper = SPILL_BITS * (depth + 2) <= HASH_BITS
        tally = Tally(limit)
        for records in read_spill(path):
            tally.add(records, sub.write if deeper else None)
        path.unlink()
        if sub.flushes:  # the rest of its words go where the others went
            sub.write(tally)
        else:
            visit(tally)
        del tally  # before the next one, or the parts, are counted
        if sub.flushes:
            count_spilled(sub.folder, depth + 1, limit, visit)


class Tally(WordTable):
    """Spill records summed by word: its counts added, the earliest of its first-seen keys kept."""

    PER_WORD = WordTable.PER_WORD + ("first",)

    def __init__(self, limit: int | None = None):
        super().__init__(limit=limit)
        self.first = np.zeros(self.hashes.size, dtype=np.int64)

    def add(self, records: tuple, spill=None) -> None:
        """Add records (WordTable.records). Where growing would pass `limit`: spill(self), then empty the table."""
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
                self.grow(int(lengths[i]))

    def keys(self, flush: int) -> np.ndarray:
        return self.first[:self.n_words]


@jit
def _tally(r_hashes, r_counts, r_first, r_starts, r_lengths, r_bytes, i, table, hashes, starts, lengths, count,
           first, n_words, arena, arena_used):
    """Add records i.. to the table: a word's count added, its smallest first-seen key kept. Stops before a new
    word when the table or the arena is full (full=True; grow them and call again from the returned i)."""
    while i < r_hashes.size:
        h, pos, length = r_hashes[i], r_starts[i], r_lengths[i]
        slot = probe(table, hashes, starts, lengths, arena, h, r_bytes, pos, length)
        w = table[slot]
        if w < 0:
            if n_words == hashes.size or arena_used + length > arena.size:
                return i, n_words, arena_used, True
            w = n_words
            n_words += 1
            arena_used = insert(table, slot, w, h, hashes, starts, lengths, arena, arena_used, r_bytes, pos, length)
            count[w] = 0
            first[w] = r_first[i]
        count[w] += r_counts[i]
        first[w] = min(first[w], r_first[i])
        i += 1
    return i, n_words, arena_used, False
