"""Fault injection for the storage tests: real faults from the kernel, not mocked exceptions.

- `small_disk`: a tmpfs of a few MB (root only: mount), which `fill` fills up at a chosen moment, so
  that the next write fails with ENOSPC wherever it happens (inside torch.save, gensim, numpy, ...).
- `unreadable`: chmod 000. As root that alone is not enough (CAP_DAC_OVERRIDE lets root read anything),
  so the calling thread also drops that capability, and CAP_DAC_READ_SEARCH, for the duration.
- `truncate` and `corrupt`: damage a file in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import subprocess
from pathlib import Path

import pytest

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


class Disk:
    def __init__(self, path: Path):
        self.path = path
        self.filler = path / ".filler"

    def fill(self) -> None:
        """Take every free byte, so the next write to this filesystem fails with ENOSPC."""
        with open(self.filler, "ab", buffering=0) as f:  # unbuffered: nothing is left to flush at close
            for size in (1 << 20, 1 << 16, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB tmpfs at tmp_path/disk (skipped where this process may not mount one: not root)."""
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _caps(new_effective=None) -> int:
    """The calling thread's effective capabilities (low word); with new_effective, set them first."""
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    if new_effective is not None:
        data[0].effective = new_effective
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
    return data[0].effective


@contextlib.contextmanager
def permissions_apply():
    """File permissions apply to this thread while the context lasts, even as root."""
    old = _caps() if os.geteuid() == 0 else None
    if old is not None:
        _caps(old & ~(1 << CAP_DAC_OVERRIDE) & ~(1 << CAP_DAC_READ_SEARCH))
    try:
        yield
    finally:
        if old is not None:
            _caps(old)


@contextlib.contextmanager
def unreadable(path: Path):
    """`path` cannot be opened (EACCES) by this thread while the context lasts, even as root."""
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        with permissions_apply():
            with pytest.raises(PermissionError):
                open(path, "rb").close()
            yield
    finally:
        path.chmod(mode)


def truncate(path: Path) -> None:
    """Keep the first half of the file, as a copy or write cut short leaves it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def corrupt(path: Path, at: int | None = None, data: bytes = b"\x7f" * 64) -> None:
    """Overwrite bytes in place (the middle of the file by default): the length stays, the content is wrong."""
    size = path.stat().st_size
    at = max(0, size // 2 - len(data) // 2) if at is None else at
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data[:max(0, size - at)])
