"""What the two kinds of phrase pass share: phrases.py's, whose tables fit in memory, and phrase_spill.py's, whose
tables are bounded. The text a pass reads (Text); the table of pair counts (Pairs), keyed by the two ids packed in
an int64 (pair_key); the scores; the set of the pairs that join (set_of); and the writer of one token (put).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np

from ..errors import W2VError
from .table import EMPTY, SEPARATOR, SPACE, jit
from .tokenize import describe, iter_corpus_bytes, reading_bar

OUT_BYTES = 1 << 22  # a writer's buffer
PAIR_BITS = 32  # a pair (a, b) of ids is the key a << PAIR_BITS | b (pair_key)
LOW_ID = (1 << PAIR_BITS) - 1  # a key's bits of b
NO_ID = EMPTY  # a token not in the table (it never joins), or none before this one on its line
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


class Text:
    """The text of a phrase pass, read as often as the pass needs: the pieces of tokenize.iter_corpus_bytes, each
    read with its progress bar (in bytes of the files as stored) where `label` is given; the first read's stats
    kept."""

    def __init__(self, paths: list[Path], lowercase: bool, encoding_errors: str, label: str | None):
        self.paths, self.lowercase, self.encoding_errors, self.label = paths, lowercase, encoding_errors, label
        self.stats: dict = {}
        self.reads = 0
        self.name = describe(paths)

    @contextlib.contextmanager
    def read(self):
        self.reads += 1
        desc = f"{self.label}" + (f" (read {self.reads})" if self.reads > 1 else "")
        with reading_bar(self.paths, desc, self.label is not None) as bar:
            yield iter_corpus_bytes(self.paths, self.lowercase, self.encoding_errors,
                                    self.stats if self.reads == 1 else {}, lambda read: bar.update(read - bar.n))

    def same(self, tokens: int, seen: int) -> None:
        """A read that found another number of tokens than the first: the text changed."""
        if seen != tokens:
            raise W2VError(f"corpus {self.name} changed while it was read again ({tokens} tokens, then {seen}); "
                           "join the phrases of text that does not change")


class Pairs:
    """(a, b) -> how often token b followed token a, for ids a, b: an open-addressing table (linear probing, load
    <= 1/2) keyed by pair_key(a, b), filled by a compiled loop over a whole block of ids per call.
    A slot holds the key and its count side by side (one cache miss a token, not two): 16 bytes, 32 to 64 bytes a
    distinct pair."""

    def __init__(self, slots: int = 1 << 16):
        self.table = np.full((slots, 2), EMPTY, dtype=np.int64)  # (slots, 2): key (EMPTY: a free slot), count
        self.n = 0
        self.prev = NO_ID  # the id of the block's last token (NO_ID after a line break, for counts within lines)

    def add(self, ids: np.ndarray, cross_lines: bool, room: int | None = None, spill=None) -> bool:
        """Count the pairs of a block of ids (SEPARATOR: a line break, DROPPED: a word whose pairs are not
        counted). Where doubling the table would need more than `room` bytes (the old table and the new one):
        spill(self), then the table is emptied and goes on; or, without `spill`, returns False (the block is counted
        in part)."""
        pos = 0
        while True:
            pos, self.prev, self.n, full = _count_pairs(ids, pos, self.prev, cross_lines, self.table, self.n)
            if not full:
                return True
            if room is not None and 3 * self.table.nbytes > room:
                if spill is None:
                    return False
                spill(self)
                self.table.fill(EMPTY)
                self.n = 0
                continue
            old = self.table
            self.table = np.full((2 * len(old), 2), EMPTY, dtype=np.int64)
            _rehash_pairs(old, self.table)


@jit
def pair_key(a, b):
    """The int64 key of the pair of ids (a, b), both >= 0."""
    return (a << PAIR_BITS) | b


@jit
def pair_hash(key):
    """A packed pair's hash: splitmix64's finaliser (a bijection), since consecutive ids differ only in their low
    bits."""
    z = np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@jit
def pair_slot(key, mask):
    """A packed pair's first slot: its hash's low bits (a spill's partitions take the high ones)."""
    return np.int64(pair_hash(key) & np.uint64(mask))


@jit
def _count_pairs(ids, pos, prev, cross_lines, table, n_keys):
    """Count the pairs of consecutive tokens in ids[pos:] (SEPARATOR: a line break, which ends a pair unless
    cross_lines; DROPPED: a token whose pairs are not counted).
    Stops before a new pair when the table is half full (full=True: grow it and call again from pos)."""
    mask = len(table) - 1
    limit = len(table) // 2
    while pos < ids.size:
        w = np.int64(ids[pos])
        if w < 0:
            if w != SEPARATOR or not cross_lines:  # a line break ends a pair unless cross_lines; DROPPED always
                prev = NO_ID
        else:
            if prev >= 0:
                key = pair_key(prev, w)
                slot = pair_slot(key, mask)
                while table[slot, 0] >= 0 and table[slot, 0] != key:
                    slot = (slot + 1) & mask
                if table[slot, 0] < 0:
                    if n_keys == limit:
                        return pos, prev, n_keys, True
                    table[slot, 0] = key
                    table[slot, 1] = 0
                    n_keys += 1
                table[slot, 1] += 1
            prev = w
        pos += 1
    return pos, prev, n_keys, False


@jit
def _rehash_pairs(old, table):
    mask = len(table) - 1
    for i in range(len(old)):
        if old[i, 0] >= 0:
            slot = pair_slot(old[i, 0], mask)
            while table[slot, 0] >= 0:
                slot = (slot + 1) & mask
            table[slot, 0], table[slot, 1] = old[i, 0], old[i, 1]


@jit
def above(table, counts, total, min_count, threshold, npmi):
    """(n,) bool: which pairs of the (n, 2) table (key, count; key EMPTY: a free slot) score above the threshold,
    their tokens' counts in `counts` (by id)."""
    hit = np.zeros(len(table), dtype=np.bool_)
    for i in range(len(table)):
        key = table[i, 0]
        if key >= 0:
            hit[i] = score(counts[key >> PAIR_BITS], counts[key & LOW_ID], table[i, 1], total, min_count,
                           npmi) > threshold
    return hit


@jit
def set_of(keys):
    """The keys (distinct, >= 0) as an open-addressing set (EMPTY: a free slot) of at least twice as many slots."""
    size = 2
    while size < 2 * keys.size:
        size *= 2
    joins = np.full(size, EMPTY, dtype=np.int64)  # (size,)
    for key in keys:
        slot = pair_slot(key, size - 1)
        while joins[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        joins[slot] = key
    return joins


@jit
def member(joins, key):
    """Whether `key` is in the set `joins` (set_of's)."""
    mask = joins.size - 1
    slot = pair_slot(key, mask)
    while joins[slot] >= 0:
        if joins[slot] == key:
            return True
        slot = (slot + 1) & mask
    return False


@jit
def score(a, b, ab, total, min_count, npmi):
    """The score of a pair seen ab times, of tokens seen a and b times, in a text of `total` tokens; -inf: never
    a phrase. word2vec: word2phrase's float32 expression; npmi: gensim's float64 one, in its order."""
    if ab < min_count:
        return -np.inf
    if npmi:
        n = float(total)
        p_ab = ab / n
        if p_ab >= 1.0:  # -ln(p_ab) = 0: a text of one pair repeated, no collocation to measure
            return -np.inf
        return math.log(p_ab / ((a / n) * (b / n))) / -math.log(p_ab)
    return float(np.float32(ab - min_count) / np.float32(a) / np.float32(b) * np.float32(total))


@jit
def score_all(a, b, ab, total, min_count, npmi):
    """score of each pair: a, b, ab (P,) each."""
    out = np.empty(ab.size, dtype=np.float64)  # (P,)
    for i in range(ab.size):
        out[i] = score(a[i], b[i], ab[i], total, min_count, npmi)
    return out


@jit
def put(out, n_out, src, s, length, prev, w, joined, on_line, joins, delim):
    """The token src[s:s + length], of id w (NO_ID: a word that never joins), into out[n_out:], after the last token
    on its line (prev: its id, NO_ID if none or one that never joins; on_line: whether there is one): joined to it by
    the delimiter when their pair is in `joins` and the last one did not just join, else after a space. Returns
    where the bytes written end, and whether it joined."""
    join = prev >= 0 and w >= 0 and joined == 0 and member(joins, pair_key(prev, w))
    if join:
        out[n_out:n_out + delim.size] = delim
        n_out += delim.size
    elif on_line:
        out[n_out] = SPACE
        n_out += 1
    out[n_out:n_out + length] = src[s:s + length]
    return n_out + length, join
