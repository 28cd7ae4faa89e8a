"""Phrases: "new york" -> "new_york", scored as word2phrase scores them (Mikolov et al. 2013) or by gensim's NPMI.

A phrase pass reads the text once. The vocabulary pass's compiled table (table.WordTable) gives each token a
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

Where the tables would outgrow a memory bound, a pass counts in parts on disk and reads its text three times
(phrase_spill.py); what both kinds of pass share is in pairs.py.
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
from .. import lock
from ..config import ENCODING_ERRORS, parse_size
from ..errors import UsageError, W2VError, storage_error
from ..files import atomic_path
from .pairs import LOW_ID, NO_ID, OUT_BYTES, PAIR_BITS, Pairs, Text, above, put, score_all, set_of
from .phrase_spill import bounded
from .spill import spill_all
from .table import NEWLINE, TableFull, WordTable, jit

SCORINGS = ("word2vec", "npmi")
RUN_TEXT = "phrases.txt"  # in a run directory, the text with its phrases joined, while the vocabulary pass reads it
DEFAULT_THRESHOLD = 100.0  # word2phrase's; npmi has no default (its range is [-1, 1])
READ_IDS = 1 << 22  # ids decided per block when writing


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
    paths = _paths(corpus, out)
    # one writer an output: a second `phrases` into the same file is refused before it writes anything
    with lock.hold(lock.file_lock(out), f"the output {out}", "wait for it to finish, or write another --out"):
        work = _work_dir(out)  # the ids, spills and passes between
        start, figures = time.perf_counter(), {"thresholds": levels, "joined": [], "reads": []}
        try:
            if inputs.STDIN in paths:
                _read_stdin(paths, work)
            for k, level in enumerate(levels):
                target = out if k == len(levels) - 1 else work / f"pass{k + 1}.txt"
                t = time.perf_counter()
                text = Text(paths, lowercase if k == 0 else False, encoding_errors if k == 0 else "strict",
                            f"phrases {k + 1}/{len(levels)}" if progress else None)
                done = _one_pass(text, target, work, min_count, level, scoring, delimiter, memory)
                if k == 0:
                    figures.update(tokens=done["tokens"], replaced_bytes=text.stats.get("replaced_bytes", 0))
                figures["joined"].append(done["joined"])
                figures["reads"].append(text.reads)
                log(f"phrases: pass {k + 1} of {len(levels)} (threshold {level:g}): {_pass_note(done, memory)} in "
                    f"{time.perf_counter() - t:.1f} s")
                if k > 0:
                    paths[0].unlink()  # the last pass's output, read
                paths = [target]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    figures.update(tokens_out=figures["tokens"] - sum(figures["joined"]), seconds=time.perf_counter() - start)
    return figures


def _paths(corpus, out: Path) -> list[Path]:
    """The files of `corpus` (inputs.STDIN for `-`); UsageError where `out` cannot be written to."""
    paths = inputs.expand(corpus if isinstance(corpus, (list, tuple)) else [corpus])
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; pass the name of the file to write")
    if any(p != inputs.STDIN and out.exists() and os.path.samefile(p, out) for p in paths):
        raise UsageError(f"--out {out} is the corpus itself; write the phrased text to another file")
    return paths


def _read_stdin(paths: list[Path], work: Path) -> None:
    """Standard input, given once among `paths`, copied into `work` and read from there, as often as a pass needs."""
    if paths.count(inputs.STDIN) > 1:
        raise UsageError("standard input (-) can be read once: give it once")
    paths[paths.index(inputs.STDIN)] = inputs.stdin_to(work / "stdin.txt")


def _work_dir(out: Path) -> Path:
    """A new folder beside `out` for what a build writes before `out`."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise storage_error("write", out, e, "choose a writable path") from None


def _pass_note(done: dict, memory: int | None) -> str:
    """A pass's figures for the log."""
    return (f"{done['joined']:,} pairs joined in {done['tokens']:,} tokens ({done['pairs']:,} distinct pairs"
            f"{_bounded_note(done, memory)})")


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
    text = Text(inputs.expand(corpus if isinstance(corpus, (list, tuple)) else [corpus]), lowercase, "strict", None)
    with text.read() as pieces:
        index, pairs, _ = _count(pieces, None, scoring == "word2vec", None)
    counts = index.counts()
    keys, ab = pairs.table[:, 0], pairs.table[:, 1]  # (slots,) each; key EMPTY: a free slot
    used = (keys >= 0) & (ab >= min_count)
    keys, ab = keys[used], ab[used]  # (P,) each
    a, b = (keys >> PAIR_BITS).astype(np.int64), (keys & LOW_ID).astype(np.int64)
    values = score_all(counts[a], counts[b], ab, int(counts.sum()), min_count, scoring == "npmi")  # (P,)
    words = index.words()
    return {(words[i], words[j]): float(s) for i, j, s in zip(a.tolist(), b.tolist(), values.tolist())}


def _one_pass(text: Text, out: Path, work: Path, min_count: int, threshold: float, scoring: str, delimiter: str,
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
                spill = spill_all(index, got, pieces, work / "words")
                del index
        if pairs is None:
            return bounded(text, spill, out, work, min_count, level, npmi, delimiter, memory)
        total = int(index.count[:index.n_words].sum())
        if total == 0:
            raise W2VError(f"corpus {text.name} has no tokens (it is empty or whitespace only); pass a text file")
        # the pairs to join, decided once: the writer looks a pair up in this small set, not in the counts
        joins = set_of(pairs.table[above(pairs.table, index.count, total, min_count, level, npmi), 0])
        n_pairs = pairs.n
        del pairs
        joined = _write(ids_path, got, index, joins, delimiter, out)
    finally:
        ids_path.unlink(missing_ok=True)
    return {"tokens": total, "joined": joined, "pairs": n_pairs}


def _count(pieces, ids_path: Path | None, cross_lines: bool, memory: int | None) -> tuple:
    """Tokens and pairs counted in one read of the pieces (an iterator); their provisional ids, SEPARATOR for a line
    break, written to ids_path unless it is None. Returns (index, pairs, ids written); or, where the two tables together
    would pass `memory` bytes, (index, None, the rest of the piece it stopped in), the rest of the pieces unread."""
    index, pairs, n_ids = WordTable(limit=memory), Pairs(), 0
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
            except TableFull as full:
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


def _write(ids_path: Path, n_ids: int, index: WordTable, joins: np.ndarray, delimiter: str, out: Path) -> int:
    """The text of the ids in ids_path (the words of `index`) with the pairs in `joins` joined, into `out`
    (atomically); returns the pairs joined."""
    lengths = index.lengths[:index.n_words]
    delim = np.frombuffer(delimiter.encode("utf-8"), dtype=np.uint8)
    buf = np.empty(max(OUT_BYTES, 2 * (int(lengths.max(initial=0)) + delim.size + 1)), dtype=np.uint8)
    state = np.array([NO_ID, 0, 0], dtype=np.int64)  # the last id on this line (NO_ID: none), joined?, pairs joined
    ids = np.memmap(ids_path, dtype=np.int32, mode="r", shape=(n_ids,))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        for s in range(0, n_ids, READ_IDS):
            block = np.asarray(ids[s:s + READ_IDS])  # (B,) int32, SEPARATOR: a line break
            pos = 0
            while pos < block.size:
                pos, n_out = _write_block(block, pos, state, joins, index.arena, index.starts, lengths, delim, buf)
                f.write(buf[:n_out].data)
    del ids
    return int(state[2])


@jit
def _write_block(ids, pos, state, joins, arena, starts, lengths, delim, out):
    """The UTF-8 text of ids[pos:] into out: a token joined to the last one by the delimiter when their pair is in
    `joins` and the last one did not just join, else after a space; b"\\n" for a line break. Stops when out is
    full; returns (the next position, bytes written). state: [last id on the line or NO_ID, joined?, pairs
    joined]."""
    prev, joined, n_joined = state[0], state[1], state[2]
    n_out = 0
    while pos < ids.size:
        w = ids[pos]
        if w < 0:
            if n_out == out.size:
                break
            out[n_out] = NEWLINE
            n_out += 1
            prev, joined = NO_ID, 0
        else:
            length = lengths[w]
            if n_out + delim.size + length > out.size:
                break
            n_out, join = put(out, n_out, arena, starts[w], length, prev, np.int64(w), joined, prev >= 0, joins,
                              delim)
            n_joined += 1 if join else 0
            prev, joined = w, 1 if join else 0
        pos += 1
    state[0], state[1], state[2] = prev, joined, n_joined
    return pos, n_out
