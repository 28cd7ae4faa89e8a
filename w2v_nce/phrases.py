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

import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import inputs
from .config import ENCODING_ERRORS
from .errors import UsageError, W2VError, storage_error
from .files import atomic_path
from .tokenize import iter_token_bytes
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
          log=None) -> dict:
    """Write `corpus` (a path, directory, glob or `-`, or a list of them, read in order as train reads them) to `out`
    with its phrases joined by `delimiter`, after `passes` phrase passes (the thresholds: `thresholds`). The lines
    are kept; tokens are separated by one space. `out` is written atomically: a failure leaves no part of it.

    Returns the figures: tokens read, tokens written, each pass's threshold, pairs joined and seconds."""
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
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # the ids and the passes between
    except OSError as e:
        raise storage_error("write", out, e, "choose a writable path") from None
    start, figures = time.perf_counter(), {"thresholds": levels, "joined": []}
    try:
        if inputs.STDIN in paths:
            if paths.count(inputs.STDIN) > 1:
                raise UsageError("standard input (-) can be read once: give it once")
            paths[paths.index(inputs.STDIN)] = inputs.write_stdin(work)
        for k, level in enumerate(levels):
            target = out if k == len(levels) - 1 else work / f"pass{k + 1}.txt"
            t = time.perf_counter()
            done = _one_pass(paths, target, work / "ids", min_count, level, scoring, delimiter,
                             lowercase if k == 0 else False, encoding_errors if k == 0 else "strict")
            if k == 0:
                figures.update(tokens=done["tokens"], replaced_bytes=done["replaced_bytes"])
            figures["joined"].append(done["joined"])
            log(f"phrases: pass {k + 1} of {len(levels)} (threshold {level:g}): {done['joined']:,} pairs joined in "
                f"{done['tokens']:,} tokens ({done['pairs']:,} distinct pairs) in {time.perf_counter() - t:.1f} s")
            if k > 0:
                paths[0].unlink()  # the last pass's output, read
            paths = [target]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures.update(tokens_out=figures["tokens"] - sum(figures["joined"]), seconds=time.perf_counter() - start)
    return figures


def for_run(cfg, paths: list[Path], run_dir: Path) -> dict:
    """`train --phrases N`: the corpus after N passes (word2vec scoring, --min-count, the default thresholds) into
    run_dir/RUN_TEXT; returns what config.toml's [run] table records, and the bytes --encoding-errors replaced."""
    done = build(paths, run_dir / RUN_TEXT, min_count=cfg.min_count, passes=cfg.phrases, lowercase=cfg.lowercase,
                 encoding_errors=cfg.encoding_errors)
    return {"phrases_joined": sum(done["joined"]), "phrase_seconds": round(done["seconds"], 3),
            "replaced_bytes": done["replaced_bytes"]}


def scores(corpus, min_count: int = 5, scoring: str = "word2vec", lowercase: bool = False) -> dict:
    """{(a, b): score} for every pair of consecutive tokens of `corpus` (a path or a list of paths) seen at least
    min_count times: what a pass compares with the threshold. For looking at a text's phrases and for the tests."""
    check(min_count, 0.0, 1, scoring, "_")
    index, pairs, _, _ = _count(inputs.expand(corpus if isinstance(corpus, (list, tuple)) else [corpus]), None,
                                scoring == "word2vec", lowercase, "strict")
    words, counts = index.words(), index.counts()
    keys, ab = pairs.table[:, 0], pairs.table[:, 1]  # (slots,) each; key -1: an empty slot
    used = (keys >= 0) & (ab >= min_count)
    keys, ab = keys[used], ab[used]  # (P,) each
    a, b = (keys >> 32).astype(np.int64), (keys & 0xFFFFFFFF).astype(np.int64)
    values = _score_all(counts[a], counts[b], ab, int(counts.sum()), min_count, scoring == "npmi")  # (P,)
    return {(words[i], words[j]): float(s) for i, j, s in zip(a.tolist(), b.tolist(), values.tolist())}


def _one_pass(paths: list[Path], out: Path, ids_path: Path, min_count: int, threshold: float, scoring: str,
              delimiter: str, lowercase: bool, encoding_errors: str) -> dict:
    """One phrase pass of `paths` into `out`: count, then write."""
    index, pairs, n_ids, stats = _count(paths, ids_path, scoring == "word2vec", lowercase, encoding_errors)
    try:
        words, counts = index.words(), index.counts()
        del index
        total = int(counts.sum())
        if total == 0:
            name = paths[0] if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more files)"
            raise W2VError(f"corpus {name} has no tokens (it is empty or whitespace only); pass a text file")
        # word2phrase compares float32 with float32: the threshold as a float32, exactly, for the same verdicts
        level = float(np.float32(threshold)) if scoring == "word2vec" else threshold
        # the pairs to join, decided once: the writer looks a pair up in this small set, not in the counts
        joins = _joining(pairs.table, counts, total, min_count, level, scoring == "npmi")
        joined = _write(ids_path, n_ids, words, joins, delimiter, out)
    finally:
        ids_path.unlink(missing_ok=True)
    return {"tokens": total, "joined": joined, "pairs": pairs.n, "replaced_bytes": stats["replaced_bytes"]}


def _count(paths: list[Path], ids_path: Path | None, cross_lines: bool, lowercase: bool, encoding_errors: str):
    """Tokens and pairs counted in one read of `paths` (a line break between files, as the vocabulary pass reads
    them); the provisional ids, -1 for a line break, written to ids_path unless it is None.
    Returns (index, pairs, ids written, {"replaced_bytes": ...})."""
    index, pairs = _Index(), _Pairs()
    stats, n_ids = {"replaced_bytes": 0}, 0
    try:
        raw = open(ids_path, "wb") if ids_path is not None else None
    except OSError as e:
        raise storage_error("write", ids_path, e) from None
    try:
        for k, path in enumerate(paths):
            part: dict = {}
            piece = b"\n"
            for piece in iter_token_bytes(path, lowercase, encoding_errors, stats=part):
                n_ids += _take(index.encode(piece), pairs, cross_lines, raw)
            if not piece.endswith(b"\n") and k + 1 < len(paths):  # a file's last line ends with the file
                n_ids += _take(index.encode(b"\n"), pairs, cross_lines, raw)
            stats["replaced_bytes"] += part.get("replaced_bytes", 0)
    except OSError as e:
        raise storage_error("write", ids_path, e) from None
    finally:
        if raw is not None:
            raw.close()
    return index, pairs, n_ids, stats


def _take(ids: np.ndarray, pairs: "_Pairs", cross_lines: bool, raw) -> int:
    """Count the pairs of one block of ids and keep the ids; returns how many."""
    pairs.add(ids, cross_lines)
    if raw is not None:
        raw.write(ids.tobytes())
    return len(ids)


def _write(ids_path: Path, n_ids: int, words: list[str], joins: np.ndarray, delimiter: str, out: Path) -> int:
    """The text of the ids in ids_path with the pairs in `joins` joined, into `out` (atomically); returns the pairs
    joined."""
    encoded = [w.encode("utf-8") for w in words]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))  # (V,)
    starts = np.zeros(len(encoded), dtype=np.int64)  # (V,) each token's bytes in `arena`
    np.cumsum(lengths[:-1], out=starts[1:])
    arena = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    del encoded
    delim = np.frombuffer(delimiter.encode("utf-8"), dtype=np.uint8)
    buf = np.empty(max(OUT_BYTES, 2 * (int(lengths.max()) + delim.size + 1)), dtype=np.uint8)
    state = np.array([-1, 0, 0], dtype=np.int64)  # the last id on this line (-1: none), joined?, pairs joined
    ids = np.memmap(ids_path, dtype=np.int32, mode="r", shape=(n_ids,))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        for s in range(0, n_ids, READ_IDS):
            block = np.asarray(ids[s:s + READ_IDS])  # (B,) int32, -1: a line break
            pos = 0
            while pos < block.size:
                pos, n_out = _write_block(block, pos, state, joins, arena, starts, lengths, delim, buf)
                f.write(buf[:n_out].data)
    del ids
    return int(state[2])


class _Pairs:
    """(a, b) -> how often token b followed token a, for provisional ids a, b: an open-addressing table (linear
    probing, load <= 1/2) keyed by a << 32 | b, filled by a compiled loop over a whole block of ids per call.
    A slot holds the key and its count side by side (one cache miss a token, not two): 16 bytes, 32 to 64 bytes a
    distinct pair."""

    def __init__(self, slots: int = 1 << 20):
        self.table = np.full((slots, 2), -1, dtype=np.int64)  # (slots, 2): key (-1: empty), count
        self.n = 0
        self.prev = -1  # the id of the block's last token (-1: a line break, for counts within lines)

    def add(self, ids: np.ndarray, cross_lines: bool) -> None:
        pos = 0
        while True:
            pos, self.prev, self.n, full = _count_pairs(ids, pos, self.prev, cross_lines, self.table, self.n)
            if not full:
                return
            old = self.table
            self.table = np.full((2 * len(old), 2), -1, dtype=np.int64)
            _rehash_pairs(old, self.table)


_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@_jit
def _pair_slot(key, mask):
    """A packed pair's first slot: splitmix64's finaliser, since consecutive ids differ only in their low bits."""
    z = np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return np.int64((z ^ (z >> np.uint64(31))) & np.uint64(mask))


@_jit
def _count_pairs(ids, pos, prev, cross_lines, table, n_keys):
    """Count the pairs of consecutive tokens in ids[pos:] (-1: a line break, which ends a pair unless cross_lines).
    Stops before a new pair when the table is half full (full=True: grow it and call again from pos)."""
    mask = len(table) - 1
    limit = len(table) // 2
    while pos < ids.size:
        w = np.int64(ids[pos])
        if w < 0:
            if not cross_lines:
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
def _joining(table, counts, total, min_count, threshold, npmi):
    """The keys of the pairs in `table` that score above the threshold, as an open-addressing set (-1: empty) of at
    least twice as many slots."""
    hit = np.zeros(len(table), dtype=np.bool_)  # (slots,)
    for i in range(len(table)):
        key = table[i, 0]
        if key >= 0:
            hit[i] = _score(counts[key >> 32], counts[key & 0xFFFFFFFF], table[i, 1], total, min_count,
                            npmi) > threshold
    size = 2
    while size < 2 * hit.sum():
        size *= 2
    joins = np.full(size, -1, dtype=np.int64)  # (size,)
    for i in np.flatnonzero(hit):
        slot = _pair_slot(table[i, 0], size - 1)
        while joins[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        joins[slot] = table[i, 0]
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
            join = False
            if prev >= 0 and joined == 0:
                join = _member(joins, (np.int64(prev) << 32) | np.int64(w))
            if join:
                out[n_out:n_out + delim.size] = delim
                n_out += delim.size
                n_joined += 1
            elif prev >= 0:
                out[n_out] = 32
                n_out += 1
            s = starts[w]
            out[n_out:n_out + length] = arena[s:s + length]
            n_out += length
            prev, joined = w, 1 if join else 0
        pos += 1
    state[0], state[1], state[2] = prev, joined, n_joined
    return pos, n_out
