"""Atomic file output: write to a temporary file in the same directory, then rename over the target.

A crash, Ctrl-C or full disk therefore never leaves a half-written vectors or checkpoint file: the
target is either the old file or the complete new one, and the temporary file is removed on failure.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import W2VError, storage_error


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it to `target`, on failure delete it.
    An OSError inside (disk full, permissions) becomes a one-line StorageError naming `target`."""
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
        raise storage_error("write", target, e, "choose a writable path") from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise storage_error("write", target, e, "choose a writable path") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def save_torch(obj, target: str | os.PathLike) -> None:
    """torch.save, atomically, with the real OSError of a failed write: torch turns one from the file into
    an opaque RuntimeError ('unexpected pos ...'), so the writes go through a file object that keeps it."""
    import torch

    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        sink = _Writes(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise


class _Writes:
    """A binary file that remembers the OSError of its last failed write."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()
