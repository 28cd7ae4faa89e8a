"""Atomic file output: write to a temporary file in the same directory, then rename over the target.

A crash, Ctrl-C or full disk therefore never leaves a half-written vectors or checkpoint file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import W2VError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it to `target`, on failure delete it."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise W2VError(f"cannot write {target}: {parent} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    except OSError as e:
        raise W2VError(f"cannot write {target}: {e.strerror or e}; choose a writable path") from e
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise W2VError(f"cannot write {target}: {e.strerror or e}; choose a writable path") from e
    finally:
        if tmp.exists():
            tmp.unlink()
