"""Phrases: "new york" -> "new_york", scored as word2phrase scores them (Mikolov et al. 2013) or by gensim's NPMI.

A phrase pass reads the text once. The vocabulary pass's compiled table (vocab._Index) gives each token a
provisional id and counts it; a second compiled loop counts each pair of consecutive ids in an open-addressing table
keyed by the two ids packed in an int64 (no string is built for a pair), and the ids go to a temporary file, 4 bytes
a token. Once the counts are known, the pairs that score above the threshold go into a small set, and a third
compiled loop reads the ids back, decides each pair left to right and writes the text with the joined tokens, line
for line. A pair joins when its score exceeds the threshold (strictly) and its first token did not end a join just
before (word2phrase's `pb = 0`, gensim's analyze_sentence), so a pass joins two tokens; a further pass, run on the
last one's output, joins those again (word2vec.c's demo-phrases.sh runs word2phrase twice, at 200 then 100).

Scores, with a, b the two tokens' counts, ab the pair's, n the text's tokens and m the minimum count:
    word2vec  (ab - m) / a / b * n, in float32 and in this order, as word2phrase computes it
    npmi      ln(p_ab / (p_a p_b)) / -ln(p_ab), p_x = x / n, gensim's npmi_scorer, in [-1, 1]
A pair seen fewer than m times never joins (its score is -inf here). The counts are word2phrase's for `word2vec`
and gensim's for `npmi`: word2phrase also counts the pair that spans a line break (its `start` flag is reset before
it is tested), although it never joins one; gensim counts within a sentence, here a line.

One deliberate difference from both: they count in one table keyed by strings, so in a second pass the token
"new_york" and the unjoined pair "new york" are one entry; here a token is counted as itself and a pair as a pair.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import inputs, lock, vocab
from .config import ENCODING_ERRORS, parse_size
from .errors import UsageError, W2VError, storage_error
from .files import atomic_path
from .tokenize import describe, reading_bar
from .vocab import _Index, _jit

SCORINGS = ("word2vec", "npmi")
RUN_TEXT = "phrases.txt"  # in a run directory, the text with its phrases joined, while the vocabulary pass reads it
DEFAULT_THRESHOLD = 100.0  # word2phrase's; npmi has no default (its range is [-1, 1])
READ_IDS = 1 << 22  # ids decided per block when writing
OUT_BYTES = 1 << 22  # the writer's buffer


def thresholds(threshold, passes: int, scoring: str) -> list[float]:
    """Each pass's threshold, first pass first. One value is the last pass's; with word2vec scoring each earlier pass
    takes twice the next one's (demo-phrases.sh: 200, then 100), with npmi the same. A list gives one per pass."""
    if threshold is None:
        if scoring == "npmi":
            raise UsageError("--scoring npmi needs a --threshold in [-1, 1]")
        threshold = DEFAULT_THRESHOLD
    given = [float(t) for t in threshold] if isinstance(threshold, (list, tuple)) else [float(threshold)]
    if len(given) == 1:
        factor = 2.0 if scoring == "word2vec" else 1.0
        given = [given[0] * factor ** (passes - 1 - k) for k in range(passes)]
    elif len(given) != passes:
        raise UsageError(f"{len(given)} thresholds for {passes} passes: give one (the last pass's) or one per pass")
    for t in given:
        if scoring == "npmi" and not -1 <= t <= 1:
            raise UsageError(f"--threshold {t:g} is outside [-1, 1], the range of npmi scores")
        if scoring == "word2vec" and not 0 <= t < math.inf:
            raise UsageError(f"--threshold must be >= 0 with word2vec scoring (got {t:g})")
    return given


def check(min_count: int, threshold, passes: int, scoring: str, delimiter: str) -> list[float]:
    """UsageError for a bad option, before anything is read; returns the passes' thresholds."""
    if scoring not in SCORINGS:
        raise UsageError(f"unknown scoring {scoring!r}: choose one of {', '.join(SCORINGS)}")
    if passes < 1:
        raise UsageError(f"--passes must be >= 1 (got {passes})")
    if min_count < 1:
        raise UsageError(f"--min-count must be >= 1 (got {min_count})")
    if not delimiter or any(c.isspace() for c in delimiter):
        raise UsageError(f"--delimiter {delimiter!r} must be a non-empty string without whitespace (a joined token "
                         "must stay one token)")
    return thresholds(threshold, passes, scoring)


def build(corpus, out: str | os.PathLike, *, min_count: int = 5, threshold=None, passes: int = 1,
          scoring: str = "word2vec", delimiter: str = "_", lowercase: bool = False, encoding_errors: str = "strict",
          memory: int | None = None, progress: bool = False, log=None) -> dict:
    """Write `corpus` (a path, directory, glob or `-`, or a list of them, read in order as train reads them) to `out`
    with its phrases joined by `delimiter`, after `passes` phrase passes (the thresholds: `thresholds`). The lines
    are kept; tokens are separated by one space. `out` is written atomically: a failure leaves no part of it.
    `memory` (bytes; None: no bound) bounds the tables of distinct words and pairs: past it a pass counts in parts on
    disk beside `out` and reads its text three times (phrase_spill), with the same output. `progress`: a bar per read.

    Returns the figures: tokens read, tokens written, each pass's threshold, pairs joined, reads and seconds."""
    levels = check(min_count, threshold, passes, scoring, delimiter)
    if encoding_errors not in ENCODING_ERRORS:
        raise UsageError(f"unknown encoding-errors {encoding_errors!r}: choose strict or replace")
    log = log or (lambda *_: None)
    out = Path(out)
    paths = inputs.expand(corpus if isinstance(corpus, (list, tuple)) else [corpus])
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; pass the name of the file to write")
    if any(p != inputs.STDIN and out.exists() and os.path.samefile(p, out) for p in paths):
        raise UsageError(f"--out {out} is the corpus itself; write the phrased text to another file")
    # one writer an output: a second `phrases` into the same file is refused before it writes anything
    with lock.hold(lock.file_lock(out), f"the output {out}", "wait for it to finish, or write another --out"):
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            # the ids, spills and passes between
            work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        except OSError as e:
            raise storage_error("write", out, e, "choose a writable path") from None
        start, figures = time.perf_counter(), {"thresholds": levels, "joined": [], "reads": []}
        try:
            if inputs.STDIN in paths:
                if paths.count(inputs.STDIN) > 1:
                    raise UsageError("standard input (-) can be read once: give it once")
                paths[paths.index(inputs.STDIN)] = inputs.write_stdin(work)
            for k, level in enumerate(levels):
                target = out if k == len(levels) - 1 else work / f"pass{k + 1}.txt"
                t = time.perf_counter()
                text = _Text(paths, lowercase if k == 0 else False, encoding_errors if k == 0 else "strict",
                             f"phrases {k + 1}/{len(levels)}" if progress else None)
                done = _one_pass(text, target, work, min_count, level, scoring, delimiter, memory)
                if k == 0:
                    figures.update(tokens=done["tokens"], replaced_bytes=text.stats.get("replaced_bytes", 0))
                figures["joined"].append(done["joined"])
                figures["reads"].append(text.reads)
                log(f"phrases: pass {k + 1} of {len(levels)} (threshold {level:g}): {done['joined']:,} pairs joined in "
                    f"{done['tokens']:,} tokens ({done['pairs']:,} distinct pairs{_bounded_note(done, memory)}) in "
                    f"{time.perf_counter() - t:.1f} s")
                if k > 0:
                    paths[0].unlink()  # the last pass's output, read
                paths = [target]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    figures.update(tokens_out=figures["tokens"] - sum(figures["joined"]), seconds=time.perf_counter() - start)
    return figures


def _bounded_note(done: dict, memory: int | None) -> str:
    if not done.get("spilled"):
        return ""
    return (f" of words seen {done['min_count']} times or more; the tables outgrew {memory / 2 ** 20:,.0f} MiB: "
            f"{done['spilled'] / 2 ** 20:,.0f} MiB counted in parts on disk, the text read 3 times")


def for_run(cfg, paths: list[Path], run_dir: Path, progress: bool = False) -> dict:
    """`train --phrases N`: the corpus after N passes (word2vec scoring, --min-count, the default thresholds, the
    tables bounded by --vocab-memory) into run_dir/RUN_TEXT; returns what config.toml's [run] table records, and the
    bytes --encoding-errors replaced."""
    done = build(paths, run_dir / RUN_TEXT, min_count=cfg.min_count, passes=cfg.phrases, lowercase=cfg.lowercase,
                 encoding_errors=cfg.encoding_errors, memory=parse_size(cfg.vocab_memory), progress=progress)
    return {"phrases_joined": sum(done["joined"]), "phrase_seconds": round(done["seconds"], 3),
            "phrase_reads": done["reads"], "replaced_bytes": done["replaced_bytes"]}


def scores(corpus, min_count: int = 5, scoring: str = "word2vec", lowercase: bool = False) -> dict:
    """{(a, b): score} for every pair of consecutive tokens of `corpus` (a path or a list of paths) seen at least
    min_count times: what a pass compares with the threshold. For looking at a text's phrases and for the tests."""
    check(min_count, 0.0, 1, scoring, "_")
    text = _Text(inputs.expand(corpus if isinstance(corpus, (list, tuple)) else [corpus]), lowercase, "strict", None)
    with text.read() as pieces:
        index, pairs, _ = _count(pieces, None, scoring == "word2vec", None)
    counts = index.counts()
    keys, ab = pairs.table[:, 0], pairs.table[:, 1]  # (slots,) each; key -1: an empty slot
    used = (keys >= 0) & (ab >= min_count)
    keys, ab = keys[used], ab[used]  # (P,) each
    a, b = (keys >> 32).astype(np.int64), (keys & 0xFFFFFFFF).astype(np.int64)
    values = _score_all(counts[a], counts[b], ab, int(counts.sum()), min_count, scoring == "npmi")  # (P,)
    words = index.words()
    return {(words[i], words[j]): float(s) for i, j, s in zip(a.tolist(), b.tolist(), values.tolist())}


class _Text:
    """The text of a phrase pass, read as often as the pass needs: the pieces of vocab._pieces, each read with its
    progress bar (in bytes of the files as stored) where `label` is given; the first read's stats kept."""

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
            yield vocab._pieces(self.paths, self.lowercase, self.encoding_errors,
                                self.stats if self.reads == 1 else {}, lambda read: bar.update(read - bar.n))

    def same(self, tokens: int, seen: int) -> None:
        """A read that found another number of tokens than the first: the text changed."""
        if seen != tokens:
            raise W2VError(f"corpus {self.name} changed while it was read again ({tokens} tokens, then {seen}); "
                           "join the phrases of text that does not change")


def _one_pass(text: _Text, out: Path, work: Path, min_count: int, threshold: float, scoring: str, delimiter: str,
              memory: int | None) -> dict:
    """One phrase pass of `text` into `out`: count, then write; or, where the tables outgrow `memory`,
    phrase_spill's."""
    ids_path, npmi = work / "ids", scoring == "npmi"
    # word2phrase compares float32 with float32: the threshold as a float32, exactly, for the same verdicts
    level = float(np.float32(threshold)) if scoring == "word2vec" else threshold
    try:
        with text.read() as pieces:
            index, pairs, got = _count(pieces, ids_path, not npmi, memory)
            if pairs is None:  # the tables outgrew `memory`: the words are counted on, in partitions on disk
                ids_path.unlink(missing_ok=True)
                spill = vocab._spill_all(index, got, pieces, work / "words")
                del index
        if pairs is None:
            from .phrase_spill import bounded  # (it imports this module's compiled loops)

            return bounded(text, spill, out, work, min_count, level, npmi, delimiter, memory)
        total = int(index.count[:index.n_words].sum())
        if total == 0:
            raise W2VError(f"corpus {text.name} has no tokens (it is empty or whitespace only); pass a text file")
        # the pairs to join, decided once: the writer looks a pair up in this small set, not in the counts
        joins = _set_of(pairs.table[_above(pairs.table, index.count, total, min_count, level, npmi), 0])
        n_pairs = pairs.n
        del pairs
        joined = _write(ids_path, got, index, joins, delimiter, out)
    finally:
        ids_path.unlink(missing_ok=True)
    return {"tokens": total, "joined": joined, "pairs": n_pairs}


def _count(pieces, ids_path: Path | None, cross_lines: bool, memory: int | None) -> tuple:
    """Tokens and pairs counted in one read of the pieces (an iterator); their provisional ids, -1 for a line break,
    written to ids_path unless it is None. Returns (index, pairs, ids written); or, where the two tables together
    would pass `memory` bytes, (index, None, the rest of the piece it stopped in), the rest of the pieces unread."""
    index, pairs, n_ids = _Index(limit=memory), _Pairs(), 0
    try:
        raw = open(ids_path, "wb") if ids_path is not None else None
    except OSError as e:
        raise storage_error("write", ids_path, e) from None
    try:
        for piece in pieces:
            if memory is not None:
                index.limit = memory - pairs.table.nbytes
            try:
                ids = index.encode(piece)
            except vocab._Full as full:
                index.limit = memory  # the pairs go
                return index, None, piece[full.pos:]
            if not pairs.add(ids, cross_lines, None if memory is None else memory - index.nbytes()):
                index.limit = memory
                return index, None, b""
            if raw is not None:
                raw.write(ids.tobytes())
            n_ids += len(ids)
    except OSError as e:
        raise storage_error("write", ids_path, e) from None
    finally:
        if raw is not None:
            raw.close()
    return index, pairs, n_ids


def _write(ids_path: Path, n_ids: int, index: _Index, joins: np.ndarray, delimiter: str, out: Path) -> int:
    """The text of the ids in ids_path (the words of `index`) with the pairs in `joins` joined, into `out`
    (atomically); returns the pairs joined."""
    lengths = index.lengths[:index.n_words]
    delim = np.frombuffer(delimiter.encode("utf-8"), dtype=np.uint8)
    buf = np.empty(max(OUT_BYTES, 2 * (int(lengths.max(initial=0)) + delim.size + 1)), dtype=np.uint8)
    state = np.array([-1, 0, 0], dtype=np.int64)  # the last id on this line (-1: none), joined?, pairs joined
    ids = np.memmap(ids_path, dtype=np.int32, mode="r", shape=(n_ids,))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        for s in range(0, n_ids, READ_IDS):
            block = np.asarray(ids[s:s + READ_IDS])  # (B,) int32, -1: a line break
            pos = 0
            while pos < block.size:
                pos, n_out = _write_block(block, pos, state, joins, index.arena, index.starts, lengths, delim, buf)
                f.write(buf[:n_out].data)
    del ids
    return int(state[2])


class _Pairs:
    """(a, b) -> how often token b followed token a, for ids a, b: an open-addressing table (linear probing, load
    <= 1/2) keyed by a << 32 | b, filled by a compiled loop over a whole block of ids per call.
    A slot holds the key and its count side by side (one cache miss a token, not two): 16 bytes, 32 to 64 bytes a
    distinct pair."""

    def __init__(self, slots: int = 1 << 16):
        self.table = np.full((slots, 2), -1, dtype=np.int64)  # (slots, 2): key (-1: empty), count
        self.n = 0
        self.prev = -1  # the id of the block's last token (-1: a line break, for counts within lines)

    def add(self, ids: np.ndarray, cross_lines: bool, room: int | None = None, spill=None) -> bool:
        """Count the pairs of a block of ids (-1: a line break, DROPPED: a word whose pairs are not counted). Where
        doubling the table would need more than `room` bytes (the old table and the new one): spill(self), then
        the table is emptied and goes on; or, without `spill`, returns False (the block is counted in part)."""
        pos = 0
        while True:
            pos, self.prev, self.n, full = _count_pairs(ids, pos, self.prev, cross_lines, self.table, self.n)
            if not full:
                return True
            if room is not None and 3 * self.table.nbytes > room:
                if spill is None:
                    return False
                spill(self)
                self.table.fill(-1)
                self.n = 0
                continue
            old = self.table
            self.table = np.full((2 * len(old), 2), -1, dtype=np.int64)
            _rehash_pairs(old, self.table)


_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@_jit
def _pair_hash(key):
    """A packed pair's hash: splitmix64's finaliser (a bijection), since consecutive ids differ only in their low
    bits."""
    z = np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@_jit
def _pair_slot(key, mask):
    """A packed pair's first slot: its hash's low bits (a spill's partitions take the high ones)."""
    return np.int64(_pair_hash(key) & np.uint64(mask))


@_jit
def _count_pairs(ids, pos, prev, cross_lines, table, n_keys):
    """Count the pairs of consecutive tokens in ids[pos:] (-1: a line break, which ends a pair unless cross_lines;
    DROPPED: a token whose pairs are not counted).
    Stops before a new pair when the table is half full (full=True: grow it and call again from pos)."""
    mask = len(table) - 1
    limit = len(table) // 2
    while pos < ids.size:
        w = np.int64(ids[pos])
        if w < 0:
            if w != -1 or not cross_lines:  # a line break ends a pair unless cross_lines; a DROPPED word always
                prev = -1
        else:
            if prev >= 0:
                key = (prev << 32) | w
                slot = _pair_slot(key, mask)
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


@_jit
def _rehash_pairs(old, table):
    mask = len(table) - 1
    for i in range(len(old)):
        if old[i, 0] >= 0:
            slot = _pair_slot(old[i, 0], mask)
            while table[slot, 0] >= 0:
                slot = (slot + 1) & mask
            table[slot, 0], table[slot, 1] = old[i, 0], old[i, 1]


@_jit
def _above(table, counts, total, min_count, threshold, npmi):
    """(n,) bool: which pairs of the (n, 2) table (key, count; key -1: an empty slot) score above the threshold,
    their tokens' counts in `counts` (by id)."""
    hit = np.zeros(len(table), dtype=np.bool_)
    for i in range(len(table)):
        key = table[i, 0]
        if key >= 0:
            hit[i] = _score(counts[key >> 32], counts[key & 0xFFFFFFFF], table[i, 1], total, min_count,
                            npmi) > threshold
    return hit


@_jit
def _set_of(keys):
    """The keys (distinct, >= 0) as an open-addressing set (-1: empty) of at least twice as many slots."""
    size = 2
    while size < 2 * keys.size:
        size *= 2
    joins = np.full(size, -1, dtype=np.int64)  # (size,)
    for key in keys:
        slot = _pair_slot(key, size - 1)
        while joins[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        joins[slot] = key
    return joins


@_jit
def _member(joins, key):
    mask = joins.size - 1
    slot = _pair_slot(key, mask)
    while joins[slot] >= 0:
        if joins[slot] == key:
            return True
        slot = (slot + 1) & mask
    return False


@_jit
def _score(a, b, ab, total, min_count, npmi):
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


@_jit
def _score_all(a, b, ab, total, min_count, npmi):
    out = np.empty(ab.size, dtype=np.float64)  # (P,)
    for i in range(ab.size):
        out[i] = _score(a[i], b[i], ab[i], total, min_count, npmi)
    return out


@_jit
def _put(out, n_out, src, s, length, prev, w, joined, on_line, joins, delim):
    """The token src[s:s + length], of id w (-1: a word that never joins), into out[n_out:], after the last token
    on its line (prev: its id, -1 if none or one that never joins; on_line: whether there is one): joined to it by
    the delimiter when their pair is in `joins` and the last one did not just join, else after a space. Returns
    where the bytes written end, and whether it joined."""
    join = prev >= 0 and w >= 0 and joined == 0 and _member(joins, (prev << 32) | w)
    if join:
        out[n_out:n_out + delim.size] = delim
        n_out += delim.size
    elif on_line:
        out[n_out] = 32
        n_out += 1
    out[n_out:n_out + length] = src[s:s + length]
    return n_out + length, join


@_jit
def _write_block(ids, pos, state, joins, arena, starts, lengths, delim, out):
    """The UTF-8 text of ids[pos:] into out: a token joined to the last one by the delimiter when their pair is in
    `joins` and the last one did not just join, else after a space; b"\\n" for a line break. Stops when out is
    full; returns (the next position, bytes written). state: [last id on the line or -1, joined?, pairs joined]."""
    prev, joined, n_joined = state[0], state[1], state[2]
    n_out = 0
    while pos < ids.size:
        w = ids[pos]
        if w < 0:
            if n_out == out.size:
                break
            out[n_out] = 10
            n_out += 1
            prev, joined = -1, 0
        else:
            length = lengths[w]
            if n_out + delim.size + length > out.size:
                break
            n_out, join = _put(out, n_out, arena, starts[w], length, prev, np.int64(w), joined, prev >= 0, joins,
                               delim)
            n_joined += 1 if join else 0
            prev, joined = w, 1 if join else 0
        pos += 1
    state[0], state[1], state[2] = prev, joined, n_joined
    return pos, n_out
