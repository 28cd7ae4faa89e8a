"""The corpus a run reads: files, directories, globs and standard input for the CLI and the API, or the sentences
of a Python iterable (what is not a file is streamed into the run directory first: run/sentences.py).

A directory stands for its files (not hidden, not in subdirectories) with the suffixes in SUFFIXES or none, in
name order; a glob (`'data/*.txt.gz'`, quoted so the shell passes it) for the files it matches, in name order;
`-` for standard input.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import socket
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError, W2VError, storage_error

STDIN = Path("-")
SUFFIXES = (".txt", ".text", ".tok", ".gz", ".bz2", ".xz")  # a directory's files that are read (and no suffix)


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
            raise W2VError(_missing(path))
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


def _missing(path: Path) -> str:
    """The message for a corpus that is not here: in a torchrun job of several machines, rank 0's machine may not be
    the one the user started with --node-rank 0 (torchrun's c10d rendezvous numbers the machines by hostname)."""
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) <= 1:
        return f"corpus {path} does not exist; check the path"
    return (f"corpus {path} does not exist on {socket.gethostname()}, the machine torchrun made rank 0 (rank 0 reads "
            "the corpus; --rdzv-backend c10d numbers the machines by hostname, not by --node-rank): start every "
            "machine with --master-addr HOST --master-port PORT and --node-rank 0 on the corpus's (docs/torchrun.md), "
            "or give this machine the corpus at the same path")


def _rank() -> int:
    """This process's torchrun rank (torchrun sets RANK), 0 outside one."""
    return int(os.environ.get("RANK", "0"))


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


MAGIC = ((b"\x1f\x8b", gzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))  # (first bytes, reader)


def copy_stdin(f) -> None:
    """Standard input, decompressed if it is gzip, bzip2 or xz (by its first bytes), into the binary file f."""
    source = sys.stdin.buffer
    head = source.peek(8)[:8] if hasattr(source, "peek") else b""
    opener = next((o for magic, o in MAGIC if head.startswith(magic)), None)
    try:
        shutil.copyfileobj(opener(fileobj=source) if opener else source, f, 1 << 20)
    except (EOFError, lzma.LZMAError) as e:
        raise W2VError(f"cannot read standard input: {e} (is the compressed stream truncated?)") from None


def stdin_to(path: Path) -> Path:
    """Standard input (copy_stdin) into the file `path`, read once; returns it."""
    try:
        with open(path, "wb") as f:
            copy_stdin(f)
    except OSError as e:
        raise storage_error("write", path, e) from None
    return path


def line_of(sentence, n: int) -> str:
    """Sentence n of an iterable (a list of tokens, or a string split at whitespace) as a line of text."""
    if isinstance(sentence, str):
        return " ".join(sentence.split()) + "\n"
    if isinstance(sentence, (list, tuple)):
        for token in sentence:
            if not isinstance(token, str) or not token or token != "".join(token.split()):
                raise UsageError(f"sentence {n}: token {token!r} is not a non-empty string without whitespace")
        return " ".join(sentence) + "\n"
    raise UsageError(f"sentence {n} is a {type(sentence).__name__}: each sentence must be a list of tokens or a "
                     "string")
