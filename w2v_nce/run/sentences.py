"""A corpus that is not a file, streamed into the run directory first (rundir.SENTENCES) and read from there like a
file: the sentences of a Python iterable (the API), or standard input (`-`, plain or compressed); read once."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from . import rundir
from ..corpus.inputs import copy_stdin, line_of
from ..errors import UsageError, storage_error


def write_sentences(sentences: Iterable, run_dir: Path) -> Path:
    """Stream an iterable of sentences into run_dir/sentences.txt, a line each, reading it once."""
    def write(f):
        for n, sentence in enumerate(sentences, 1):
            f.write(line_of(sentence, n))
    return _stream(run_dir, write, "w")


def write_stdin(run_dir: Path) -> Path:
    """Standard input (decompressed if it is gzip, bzip2 or xz) into run_dir/sentences.txt, read once."""
    return _stream(run_dir, copy_stdin, "wb")


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
        raise
    return path
