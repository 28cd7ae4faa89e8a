"""The compiled table of distinct words, and the byte scan that splits text into its tokens.

WordTable maps a word (its UTF-8 bytes) to a provisional id in first-seen order and counts it: an open-addressing hash
table (linear probing, load <= 1/2) whose lookups run compiled, over a whole block of bytes per call. Not a dict: a
Python lookup per token would be most of the pass; compiled, splitting, hashing and counting cost about as much as
reading the file.

next_token is the one scan of UTF-8 bytes (as tokenize.iter_token_bytes leaves them) into tokens and line breaks.
Every compiled loop over text calls it: the vocabulary pass's count (WordTable.encode), the lookups of its second
pass and of the bounded phrase pass (WordTable.lookup), and the bounded phrase pass's writer (phrase_spill).
"""

from __future__ import annotations

from .. import jit_cache  # noqa: F401 (before any kernel: numba's cache keyed to every file a kernel reaches)

import numpy as np

from .tokenize import ASCII_SPACE

try:
    import numba
    jit = numba.njit(cache=True, nogil=True)
except ImportError:  # numba is a dependency; without it the same loops run as Python, slowly
    def jit(f):
        return f

SEPARATOR = -1  # id stored between lines in the encoded corpus; windows never cross it
DROPPED = -2  # a word that is not in the vocabulary, removed before corpus.ids is written
EMPTY = -1  # a free slot of a hash table; an id looked up and not found
NEWLINE, SPACE = ord("\n"), ord(" ")  # the bytes that end a line and that separate two tokens in text written
# bytes a word of a bounded table's room may need beside the table: the vocabulary's choice (select's sort: -counts,
# the order, the kept ones; the remap) or a spill's (keys, partitions and their order)
RESERVE_PER_WORD = 40

# what a byte is to the scan: BYTE_KIND[byte]
IN_TOKEN, BETWEEN, LINE_END = 0, 1, 2  # part of a token, separates tokens, ends a line
BYTE_KIND = np.full(256, IN_TOKEN, dtype=np.uint8)
BYTE_KIND[list(ASCII_SPACE)] = BETWEEN
BYTE_KIND[NEWLINE] = LINE_END
# what next_token found
TOKEN, BREAK, DONE = 0, 1, 2  # a token, a line break, the end of the bytes
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


class WordTable:
    """word (UTF-8 bytes) -> provisional id in first-seen order, with counts (the module's docstring)."""

    PER_WORD = ("hashes", "starts", "lengths", "count")  # the arrays with an entry per word (id)

    def __init__(self, slots: int = 1 << 16, arena_bytes: int = 1 << 20, limit: int | None = None):
        self.table = np.full(slots, EMPTY, dtype=np.int32)  # slot -> provisional id
        self.hashes = np.zeros(slots // 2, dtype=np.uint64)  # per id: its hash, its bytes in the arena,
        self.starts = np.zeros(slots // 2, dtype=np.int64)  # and how often it occurred
        self.lengths = np.zeros(slots // 2, dtype=np.int32)
        self.count = np.zeros(slots // 2, dtype=np.int64)
        self.arena = np.zeros(arena_bytes, dtype=np.uint8)  # the words' bytes, one after another
        self.n_words = self.arena_used = 0
        self.out = np.zeros(0, dtype=np.int32)
        self.limit = limit  # bytes the table may grow to (over_limit); None: no bound

    @classmethod
    def of(cls, words: list[str]) -> WordTable:
        """A table of `words` (distinct, without whitespace): each one's id is its place in the list."""
        table = cls()
        for s in range(0, len(words), 1 << 16):
            table.encode(" ".join(words[s:s + (1 << 16)]).encode("utf-8"))
        return table

    def encode(self, piece: bytes, spill=None) -> np.ndarray:
        """The provisional ids of the tokens of `piece`, SEPARATOR for each line break (a view, valid until the
        next call). Where growing would pass `limit`: spill(self), then the table is emptied and goes on (the
        ids are then meaningless), or without `spill` raise TableFull at the first token not counted."""
        buf = np.frombuffer(piece, dtype=np.uint8)
        if self.out.size < buf.size:  # a piece of n bytes holds at most n tokens and line breaks
            self.out = np.zeros(buf.size, dtype=np.int32)
        pos = n_out = 0
        while True:
            pos, n_out, self.n_words, self.arena_used, full = _encode(
                buf, pos, self.out, n_out, BYTE_KIND, self.table, self.hashes, self.starts, self.lengths,
                self.count, self.n_words, self.arena, self.arena_used)
            if not full:
                return self.out[:n_out]
            need = buf.size - pos  # the pending token is no longer than the rest
            if not self.over_limit(need):
                self.grow(need_bytes=need)
            elif spill is None:
                raise TableFull(pos)
            else:
                spill(self)
                self.clear()

    def lookup(self, pieces, value: np.ndarray, keep_dropped: bool):
        """The tokens of each piece of text (bytes) looked up, no word added: yields (ids, tokens) a piece, ids
        ((m,) int32, a view of a buffer the next piece reuses) value[id] of each token in the table and SEPARATOR
        for each line break; for a token not in it (or of value DROPPED), DROPPED if keep_dropped, else nothing;
        tokens: how many the piece holds."""
        out = np.zeros(0, dtype=np.int32)
        for piece in pieces:
            buf = np.frombuffer(piece, dtype=np.uint8)
            if out.size < buf.size:
                out = np.zeros(buf.size, dtype=np.int32)
            n_out, n = _lookup(buf, out, BYTE_KIND, self.table, self.hashes, self.starts, self.lengths, self.arena,
                               value, keep_dropped)
            yield out[:n_out], n

    def ids_of(self, words: WordTable) -> np.ndarray:
        """(words.n_words,) int32: each word of the table `words` looked up in this one: its id here, EMPTY if
        absent."""
        out = np.empty(words.n_words, dtype=np.int32)
        _find_each(self.table, self.hashes, self.starts, self.lengths, self.arena, words.hashes, words.starts,
                   words.lengths, words.arena, out)
        return out

    def grow(self, need_bytes: int) -> None:
        """Room for one more word of need_bytes: the table doubled where it is half full, the arena where it has not
        the bytes."""
        if self.n_words == self.hashes.size:  # double the table, keeping the load at most 1/2
            self.table = np.full(2 * self.table.size, EMPTY, dtype=np.int32)
            for name in self.PER_WORD:
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros_like(old)]))
            _rehash(self.table, self.hashes, self.n_words)
        if self.arena.size - self.arena_used < need_bytes:
            self.arena = np.concatenate([self.arena, np.zeros(max(self.arena.size, need_bytes), np.uint8)])

    def over_limit(self, need_bytes: int) -> bool:
        """Whether grow(need_bytes) would pass `limit`: the arrays as it leaves them, and RESERVE_PER_WORD for each
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
        self.table.fill(EMPTY)
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


class TableFull(Exception):
    """WordTable.encode without a spill: growing would pass the table's limit, at byte `pos` of the piece."""

    def __init__(self, pos: int):
        super().__init__(pos)
        self.pos = pos


# -- the compiled pieces: the scan, the probe, and the loops over a block -------------------------------------------

@jit
def next_token(buf, pos, kind):
    """What comes next in buf[pos:] after the bytes that separate tokens: (TOKEN, start, end, hash) for the token
    buf[start:end] (its hash FNV-1a over its bytes), (BREAK, start, start + 1, 0) for a line break at start, or
    (DONE, n, n, 0) at the end of buf (n bytes). kind: BYTE_KIND. Go on from `end`."""
    n = buf.size
    while pos < n and kind[buf[pos]] == BETWEEN:
        pos += 1
    if pos == n:
        return DONE, n, n, np.uint64(0)
    if kind[buf[pos]] == LINE_END:
        return BREAK, pos, pos + 1, np.uint64(0)
    end = pos
    h = _FNV_OFFSET
    while end < n and kind[buf[end]] == IN_TOKEN:
        h = (h ^ np.uint64(buf[end])) * _FNV_PRIME
        end += 1
    return TOKEN, pos, end, h


@jit
def _slot(h, mask):
    """A hash's first slot (both lookups and rehashing must agree): its high bits folded into the low ones."""
    return np.int64((h ^ (h >> np.uint64(32))) & np.uint64(mask))


@jit
def probe(table, hashes, starts, lengths, arena, h, buf, pos, length):
    """The slot of the word buf[pos:pos + length] (hash h) in a WordTable's arrays, or the empty slot where it would
    go."""
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


@jit
def insert(table, slot, w, h, hashes, starts, lengths, arena, arena_used, src, pos, length):
    """Word w, src[pos:pos + length] of hash h, into a WordTable's empty slot, its bytes at arena[arena_used:];
    returns where the arena's bytes now end."""
    table[slot] = w
    hashes[w] = h
    starts[w] = arena_used
    lengths[w] = length
    arena[arena_used:arena_used + length] = src[pos:pos + length]
    return arena_used + length


@jit
def _encode(buf, pos, out, n_out, kind, table, hashes, starts, lengths, count, n_words, arena, arena_used):
    """Split buf[pos:] into tokens and line breaks, look each token up (adding new ones), count it and write its id
    to out[n_out:], SEPARATOR for a line break. Stops before a new word when the table or the arena is full
    (full=True; grow them and call again from the returned pos)."""
    while True:
        what, start, end, h = next_token(buf, pos, kind)
        if what == DONE:
            return end, n_out, n_words, arena_used, False
        if what == BREAK:
            out[n_out] = SEPARATOR
            n_out += 1
            pos = end
            continue
        length = end - start
        slot = probe(table, hashes, starts, lengths, arena, h, buf, start, length)
        w = table[slot]
        if w < 0:
            if n_words == hashes.size or arena_used + length > arena.size:
                return start, n_out, n_words, arena_used, True
            w = n_words
            n_words += 1
            arena_used = insert(table, slot, w, h, hashes, starts, lengths, arena, arena_used, buf, start, length)
        count[w] += 1
        out[n_out] = w
        n_out += 1
        pos = end


@jit
def _lookup(buf, out, kind, table, hashes, starts, lengths, arena, value, keep_dropped):
    """WordTable.lookup's loop: _encode's split, without adding words."""
    pos = n_out = n_tokens = 0
    while True:
        what, start, end, h = next_token(buf, pos, kind)
        if what == DONE:
            return n_out, n_tokens
        if what == BREAK:
            out[n_out] = SEPARATOR
            n_out += 1
        else:
            w = table[probe(table, hashes, starts, lengths, arena, h, buf, start, end - start)]
            if w >= 0 and value[w] != DROPPED:
                out[n_out] = value[w]
                n_out += 1
            elif keep_dropped:
                out[n_out] = DROPPED
                n_out += 1
            n_tokens += 1
        pos = end


@jit
def _rehash(table, hashes, n_words):
    mask = table.size - 1
    for w in range(n_words):
        h = hashes[w]
        slot = _slot(h, mask)
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = w


@jit
def _find_each(table, hashes, starts, lengths, arena, q_hashes, q_starts, q_lengths, q_arena, out):
    """out[i]: the id of the i-th query word (q_arena[q_starts[i]:][:q_lengths[i]]) in the table, EMPTY if absent."""
    for i in range(out.size):
        out[i] = table[probe(table, hashes, starts, lengths, arena, q_hashes[i], q_arena, q_starts[i],
                             q_lengths[i])]


@jit
def _pack(arena, starts, ids, lengths, out):
    """The bytes of words ids (of lengths `lengths`), one after another, into out."""
    o = 0
    for j in range(ids.size):
        s, n = starts[ids[j]], lengths[j]
        out[o:o + n] = arena[s:s + n]
        o += n
