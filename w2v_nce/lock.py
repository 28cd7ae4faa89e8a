"""One writer at a time: a run directory (or an output file) is written by the process that holds its lock.

The lock is the OS's (flock) on a small file beside what is written (RUN/.lock, OUT.lock), taken before anything
is changed and held to the end. The kernel releases it when the process ends, however it ends, so a killed run
leaves nothing to clean by hand: its next writer takes the lock at once. A second writer is refused, never made
to wait, with a line naming the holder (its PID, host and command, which the holder writes into the file).
Readers never take it; they read the last complete files, and may name the holder (`holder`).

The holder removes the file before it lets go of the lock, and a taker checks that the file it locked is still
the one at the path: otherwise two processes could each hold a lock, one on a file already removed.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there (docs/troubleshooting.md)
    fcntl = None

from .errors import W2VError, storage_error

RUN_LOCK = ".lock"  # in a run directory


class Busy(W2VError):
    """Another process holds the lock: nothing was changed."""


def run_lock(run_dir: Path) -> Path:
    return Path(run_dir) / RUN_LOCK


def file_lock(out: Path) -> Path:
    """The lock of an output file that is not in a run directory: OUT.lock beside it."""
    out = Path(out)
    return out.with_name(f"{out.name}.lock")


@contextlib.contextmanager
def hold(path: Path, what: str, advice: str):
    """Hold the lock file `path` (its folder made if need be) for the block; `what` is written (a run directory
    X, the output X) and `advice` what to do, for the refusal: '{what} is in use by process N (...); {advice}'."""
    path = Path(path)
    if fcntl is None:
        yield
        return
    fd = _take(path, what, advice)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # first: a process that opened this file and locks it next sees it is gone
        os.close(fd)


def _take(path: Path, what: str, advice: str) -> int:
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise storage_error("write", path, e, "choose another place") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            by = _holder_record(fd)
            os.close(fd)
            raise Busy(f"{what} is in use by {by or 'another process'}; {advice}") from None
        except OSError as e:  # a filesystem without locks (some network mounts)
            os.close(fd)
            raise storage_error("lock", path, e, "its filesystem has no file locks: write to a local disk") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its last holder removed it between our open and our lock: take the new one
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    command = _command(sys.argv)
    record = f"{os.getpid()}\n{socket.gethostname()}\n{started}\n{command}\n".encode()
    try:  # written over, then cut to length: a reader never sees an empty record of a live holder
        os.pwrite(fd, record, 0)
        os.ftruncate(fd, len(record))
    except OSError:
        pass  # the record only names the holder; the lock holds without it
    return fd


def _holder_record(fd: int, wait: float = 1.0) -> str | None:
    """The holder's description from the locked file fd. A holder writes its record just after it takes the lock,
    so a file still empty is read again for up to `wait` seconds (two processes started together meet there)."""
    end = time.monotonic() + wait
    while True:
        by = _describe(os.pread(fd, 4096, 0))
        if by is not None or time.monotonic() >= end:
            return by
        time.sleep(0.01)


def _command(argv: list[str]) -> str:
    """This process's command line as its user typed it: `w2v-nce train ...`, `python -m w2v_nce train ...` (also
    what torchrun's ranks run), or the script's name."""
    if not argv or not argv[0]:
        return "python"
    first = Path(argv[0])
    name = f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name
    return " ".join([name, shlex.join(argv[1:])]).strip()


def _describe(record: bytes) -> str | None:
    """'process 123 (w2v-nce train --resume r, started 2026-12-05T16:40:12+00:00)', 'on host h' where it is
    another; None for an empty or unreadable record."""
    try:
        pid, host, started, command = record.decode().split("\n")[:4]
        pid = int(pid)
    except (UnicodeDecodeError, ValueError):
        return None
    where = "" if host == socket.gethostname() else f" on host {host}"
    return f"process {pid}{where} ({command}, started {started})"


def holder(path: Path) -> str | None:
    """Who holds the lock file `path`, read without taking it: None when nobody does (no file, or its process is
    gone: a killed holder's file stays behind, unlocked). Only a process of this host can be checked."""
    try:
        record = Path(path).read_bytes()
    except OSError:
        return None
    by = _describe(record)
    if by is None:
        return None
    pid, host = record.decode().split("\n")[:2]
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return by
