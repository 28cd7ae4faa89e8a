"""The corpus a run reads: files, directories, globs and standard input for the CLI and the API, and the sentences
of a Python iterable; what is not a file is streamed into the run directory first (rundir.SENTENCES), read once.

A directory stands for its files (not hidden, not in subdirectories) with the suffixes in SUFFIXES or none, in
name order; a glob (`'data/*.txt.gz'`, quoted so the shell passes it) for the files it matches, in name order;
`-` for standard input, plain or compressed (gzip, bzip2 or xz, recognised by their first bytes).
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from . import rundir
from .errors import UsageError, W2VError, storage_error

STDIN = Path("-")
SUFFIXES = (".txt", ".text", ".tok", ".gz", ".bz2", ".xz")  # a directory's files that are read (and no suffix)
_MAGIC = ((b"\x1f\x8b", gzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))


def expand(items: Iterable, skipped: list | None = None) -> list[Path]:
    """Each path, directory, glob or `-` given, as the files read in order (STDIN for `-`); what a directory holds
    and is not read goes to `skipped`, as (path, why). Only rank 0 of a torchrun job reads the corpus: on the others
    a path that does not exist here is passed on as it is."""
    out: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if text == "-":
            out.append(STDIN)
        elif path.is_dir():
            files, passed = [], []
            for p in sorted(path.iterdir()):
                why = _not_read(p)
                (passed.append((p, why)) if why else files.append(p))
            if not files:
                raise W2VError(f"corpus directory {path} has no files to read ({', '.join(SUFFIXES)} or no suffix)"
                               + (f"; it holds {_list(passed)}" if passed else ""))
            out += files
            if skipped is not None:
                skipped += passed
        elif not path.exists() and _is_glob(text):
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                raise W2VError(f"corpus {text} matches no file; check the pattern")
            out += matches
        elif not path.exists() and _rank() == 0:
            raise W2VError(f"corpus {path} does not exist; check the path")
        else:
            out.append(path)
    return out


def _not_read(p: Path) -> str | None:
    """Why a directory's entry is not read as corpus, or None when it is."""
    if p.name.startswith("."):
        return "hidden"
    if p.is_dir():
        return "a directory: name it to read it"
    if not p.is_file():
        return "not a regular file"
    if p.suffix and p.suffix.lower() not in SUFFIXES:
        return f"its suffix {p.suffix}"
    return None


def _list(entries: list, shown: int = 5) -> str:
    """'a.txt, b.txt, ... and 7 more' of (path, why) pairs or paths."""
    names = [f"{p.name} ({why})" if why else "standard input" if p == STDIN else p.name for p, why in
             ((e if isinstance(e, tuple) else (e, None)) for e in entries[:shown])]
    return ", ".join(names) + (f" and {len(entries) - shown:,} more" if len(entries) > shown else "")


def inputs_note(paths: list[Path], skipped: list) -> str | None:
    """The log's line for a corpus of several files or read from directories: the files read, and what the
    directories held that was not, with why; None for a single file given by name."""
    if len(paths) < 2 and not skipped:
        return None
    note = (f"corpus: {len(paths):,} files read in this order: {_list(paths)}" if len(paths) > 1 else
            f"corpus: 1 file read: {_list(paths)}")
    if skipped:
        note += (f"; not read: {_list(skipped)} (a directory's files are read when they end in "
                 f"{', '.join(SUFFIXES)} or have no suffix)")
    return note


def corpus_paths(corpus, skipped: list | None = None) -> list[Path] | None:
    """The corpus as a list of paths, or None for an iterable of sentences. A list of strings is paths when every
    one names an existing file, else sentences. `skipped`: see expand."""
    if corpus is None:
        raise UsageError("missing corpus: a path, a list of paths, or an iterable of sentences")
    if isinstance(corpus, (str, os.PathLike)):
        return expand([corpus], skipped)
    if isinstance(corpus, (list, tuple)) and corpus and all(isinstance(c, os.PathLike) or _is_path(c)
                                                          for c in corpus):
        return expand(corpus, skipped)
    if not isinstance(corpus, Iterable):
        raise UsageError(f"corpus must be a path, a list of paths or an iterable of sentences, not "
                         f"{type(corpus).__name__}")
    return None


def _rank() -> int:
    """This process's torchrun rank, 0 outside one; distributed.py imports torch (a second): only for a missing path,
    so that `w2v-nce phrases` does without it."""
    from .distributed import env_rank
    return env_rank()


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _is_path(text) -> bool:
    """Whether a string names an existing file or directory, a glob that matches, or standard input (a sentence may
    be too long a name for the system to look up)."""
    try:
        return isinstance(text, str) and "\n" not in text and (
            text == "-" or Path(text).exists() or (_is_glob(text) and bool(glob.glob(text))))
    except (OSError, ValueError):
        return False


def write_sentences(sentences: Iterable, run_dir: Path) -> Path:
    """Stream an iterable of sentences into run_dir/sentences.txt, a line each, reading it once."""
    def write(f):
        for n, sentence in enumerate(sentences, 1):
            f.write(_line(sentence, n))
    return _stream(run_dir, write, "w")


def _stream(run_dir: Path, write, mode: str) -> Path:
    """run_dir/sentences.txt written by write(file); nothing left of it, or of a run_dir it made, if that fails."""
    if rundir.occupied(run_dir):
        raise UsageError(f"run directory {run_dir} already exists and is not empty; pass another --out (out=) or "
                         "--resume it (resume=True)")
    path = run_dir / rundir.SENTENCES
    made = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(path, mode, **({"encoding": "utf-8", "newline": "\n"} if mode == "w" else {})) as f:
            write(f)
    except BaseException as e:  # nothing is left of a run that never started
        path.unlink(missing_ok=True)
        if made:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(e, OSError):
            raise storage_error("write", path, e) from None
        if isinstance(e, (EOFError, lzma.LZMAError)):
            raise W2VError(f"cannot read standard input: {e} (is the compressed stream truncated?)") from None
        raise
    return path


def _line(sentence, n: int) -> str:
    if isinstance(sentence, str):
        return " ".join(sentence.split()) + "\n"
    if isinstance(sentence, (list, tuple)):
        for token in sentence:
            if not isinstance(token, str) or not token or token != "".join(token.split()):
                raise UsageError(f"sentence {n}: token {token!r} is not a non-empty string without whitespace")
        return " ".join(sentence) + "\n"
    raise UsageError(f"sentence {n} is a {type(sentence).__name__}: each sentence must be a list of tokens or a "
                     "string")


def write_stdin(run_dir: Path) -> Path:
    """Standard input (decompressed if it is gzip, bzip2 or xz) into run_dir/sentences.txt, read once."""
    source = sys.stdin.buffer
    head = source.peek(8)[:8] if hasattr(source, "peek") else b""
    opener = next((o for magic, o in _MAGIC if head.startswith(magic)), None)
    return _stream(run_dir, lambda f: shutil.copyfileobj(opener(fileobj=source) if opener else source, f, 1 << 20),
                   "wb")
