"""Phrases within a memory bound: the pass of phrases.py, for a text whose tables of distinct words and pairs would
pass `memory` bytes (`phrases --memory`, `train --phrases` with `--vocab-memory`).

Only a word seen min_count times can be in a pair seen min_count times (a pair's count is at most either word's), so
the pass needs the pairs of those words only. The first read, which outgrew the bound, has spilled its words to
partitions on disk (spill.spill_all, as the vocabulary pass does past --vocab-memory); then (1) each partition is
counted alone (spill.kept_words) and the words seen min_count times or more are kept in one table; (2) a second read
counts the pairs of kept words, the table written out to partitions by hash (_PairSpill) where it would pass the room
left, each partition then summed alone, split again by the hash's next bits where it does not fit; (3) a third read
writes the text, each token copied from it and looked up among the kept words. The counts, the scores and the text
written are those of the one-read pass, byte for byte (tests/test_phrases_memory.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import storage_error
from ..files import atomic_path
from .pairs import NO_ID, OUT_BYTES, Pairs, Text, above, pair_hash, put, set_of
from .spill import HASH_BITS, SPILL_BITS, Spill, kept_words
from .table import BREAK, BYTE_KIND, DONE, NEWLINE, WordTable, jit, next_token, probe

PAIR_RECORD_BYTES = 16  # a pair's record in a partition file: its key and its count, two int64
# bytes a record may take to be summed (read, sorted, summed) and, where a partition is split again, to be copied
SUM_BYTES, SPLIT_BYTES = 48, 64


def bounded(text: Text, spill: Spill, out: Path, work: Path, min_count: int, level: float, npmi: bool, delimiter: str,
            memory: int) -> dict:
    """A phrase pass of `text` into `out` within `memory` bytes, after its first read outgrew them and spilled its
    words (`spill`): the three steps of the module's docstring. Returns phrases._one_pass's figures and the bytes
    spilled."""
    kept, total = kept_words(spill, memory, lambda tally: tally.count[:tally.n_words] >= min_count)
    tokens, counts = total["tokens"], kept.counts()  # counts: (K,) by kept id
    value = np.arange(kept.n_words, dtype=np.int32)  # a kept word's id is its place in `kept`
    room = max(memory - kept.nbytes(), memory // 4)  # (kept words past `memory`: the bound is passed, not stuck)
    pairs, pair_spill, seen = Pairs(), _PairSpill(work / "pairs", 0), 0
    with text.read() as pieces:
        for ids, n in kept.lookup(pieces, value, keep_dropped=True):
            seen += n
            pairs.add(ids, not npmi, room, pair_spill.write)
    text.same(tokens, seen)

    def hits_of(table: np.ndarray) -> np.ndarray:
        return above(table, counts, tokens, min_count, level, npmi)

    if pair_spill.flushes:
        pair_spill.write(pairs)
        del pairs
        hits, n_pairs = pair_spill.above(room, hits_of)
    else:
        hits, n_pairs = pairs.table[hits_of(pairs.table), 0], pairs.n
        del pairs
    joined, seen = _write_text(text, kept, set_of(hits), delimiter, out)
    text.same(tokens, seen)
    return {"tokens": tokens, "joined": joined, "pairs": n_pairs, "min_count": min_count,
            "spilled": spill.bytes + pair_spill.bytes}


class _PairSpill:
    """Pair tables written out to 2 ** SPILL_BITS partition files in `folder` as (key, count) int64 records, each
    pair into the file that its hash's bits [HASH_BITS - SPILL_BITS * (depth + 1), HASH_BITS - SPILL_BITS * depth)
    name."""

    def __init__(self, folder: Path, depth: int):
        self.folder, self.depth, self.flushes, self.bytes = folder, depth, 0, 0

    def write(self, pairs: Pairs) -> None:
        self.write_records(pairs.table[pairs.table[:, 0] >= 0])

    def write_records(self, records: np.ndarray) -> None:
        """records: (n, 2) int64, key and count."""
        if len(records) == 0:
            return
        self.flushes += 1
        shift = HASH_BITS - SPILL_BITS * (self.depth + 1)
        part = _pair_part(records[:, 0], shift, (1 << SPILL_BITS) - 1)  # (n,) each record's file
        order = np.argsort(part, kind="stable")
        ends = np.cumsum(np.bincount(part, minlength=1 << SPILL_BITS))
        for p, (a, b) in enumerate(zip([0] + ends[:-1].tolist(), ends.tolist())):
            if a < b:
                path = self.folder / f"{p:02x}"
                try:
                    self.folder.mkdir(exist_ok=True)
                    with open(path, "ab") as f:
                        f.write(records[order[a:b]].tobytes())
                except OSError as e:
                    raise storage_error("write", path, e) from None
                self.bytes += PAIR_RECORD_BYTES * (b - a)

    def above(self, room: int, pick) -> tuple[np.ndarray, int]:
        """The keys of the pairs that pick(table) picks ((n,) bool of a (n, 2) table of summed records), over all the
        partitions, each summed alone where its records fit in `room` (SUM_BYTES a record), else split again by the
        hash's next bits; and how many distinct pairs there were. Deletes the files."""
        hits, n_pairs = [], 0
        for path in sorted(p for p in self.folder.iterdir() if p.is_file()):
            n = path.stat().st_size // PAIR_RECORD_BYTES
            if SUM_BYTES * n > room and SPILL_BITS * (self.depth + 2) <= HASH_BITS:
                sub = _PairSpill(path.with_name(path.name + ".d"), self.depth + 1)
                step = max(1, room // SPLIT_BYTES)
                for s in range(0, n, step):
                    sub.write_records(_read_records(path, s, step))
                path.unlink()
                got, k = sub.above(room, pick)
            else:
                summed = _summed(_read_records(path, 0, n))
                path.unlink()
                got, k = summed[pick(summed), 0], len(summed)
            hits.append(got)
            n_pairs += k
        return np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64), n_pairs


def _read_records(path: Path, start: int, n: int) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.int64, count=2 * n, offset=PAIR_RECORD_BYTES * start).reshape(-1, 2)
    except OSError as e:
        raise storage_error("read", path, e) from None


def _summed(records: np.ndarray) -> np.ndarray:
    """(n, 2) (key, count) records -> (m, 2): each key once, its counts summed."""
    order = np.argsort(records[:, 0], kind="stable")
    keys = records[order, 0]
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))  # (m,) where each key's run starts
    return np.stack([keys[first], np.add.reduceat(records[order, 1], first)], axis=1)


def _write_text(text: Text, kept: WordTable, joins: np.ndarray, delimiter: str, out: Path) -> tuple[int, int]:
    """bounded()'s writer: the text read again, each token copied from it and looked up in `kept` (a word not in it
    never joins), joined to the last one where their pair is in `joins`, into `out` (atomically). Returns the pairs
    joined and the tokens read."""
    delim = np.frombuffer(delimiter.encode("utf-8"), dtype=np.uint8)
    buf = np.empty(OUT_BYTES, dtype=np.uint8)
    # the last kept id on this line (NO_ID: none, or a word not kept), joined?, pairs joined, a token on this line?,
    # tokens read
    state = np.array([NO_ID, 0, 0, 0, 0], dtype=np.int64)
    with atomic_path(out) as tmp, open(tmp, "wb") as f, text.read() as pieces:
        for piece in pieces:
            src = np.frombuffer(piece, dtype=np.uint8)
            if buf.size < src.size + delim.size + 2:  # room for any one token of the piece
                buf = np.empty(src.size + delim.size + 2, dtype=np.uint8)
            pos = 0
            while pos < src.size:
                pos, n_out = _write_tokens(src, pos, BYTE_KIND, kept.table, kept.hashes, kept.starts,
                                           kept.lengths, kept.arena, joins, state, delim, buf)
                f.write(buf[:n_out].data)
    return int(state[2]), int(state[4])


@jit
def _pair_part(keys, shift, mask):
    """(n,) uint16: the bits [shift, shift + SPILL_BITS) of each key's hash (mask: SPILL_BITS ones), its partition
    file."""
    out = np.empty(keys.size, dtype=np.uint16)
    for i in range(keys.size):
        out[i] = (pair_hash(keys[i]) >> np.uint64(shift)) & np.uint64(mask)
    return out


@jit
def _write_tokens(src, pos, kind, table, hashes, starts, lengths, arena, joins, state, delim, out):
    """phrases._write_block for bounded(): the tokens of src[pos:] (UTF-8 text split by table.next_token), copied
    from it, each looked up in the table of kept words; a word not in it never joins. Stops when out is full; returns
    (the next position, bytes written). state: [last kept id on the line or NO_ID, joined?, pairs joined, a token on
    this line?, tokens read]."""
    prev, joined, n_joined, on_line, n_tokens = state[0], state[1], state[2], state[3], state[4]
    n_out = 0
    while True:
        what, start, end, h = next_token(src, pos, kind)
        if what == DONE:
            pos = end
            break
        if what == BREAK:
            if n_out == out.size:
                pos = start
                break
            out[n_out] = NEWLINE
            n_out += 1
            prev, joined, on_line = NO_ID, 0, 0
            pos = end
            continue
        length = end - start
        if n_out + delim.size + 1 + length > out.size:
            pos = start
            break
        w = np.int64(table[probe(table, hashes, starts, lengths, arena, h, src, start, length)])
        n_out, join = put(out, n_out, src, start, length, prev, w, joined, on_line, joins, delim)
        n_joined += 1 if join else 0
        prev, joined, on_line = w, 1 if join else 0, 1
        n_tokens += 1
        pos = end
    state[0], state[1], state[2], state[3], state[4] = prev, joined, n_joined, on_line, n_tokens
    return pos, n_out
