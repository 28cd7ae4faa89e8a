"""The one exception type the library raises for user-facing problems.

The CLI catches it at the boundary, prints its message as one line and exits with `code`
(no traceback). Anything else escaping is a bug and is shown in full.
"""

from __future__ import annotations

import errno
import os


class W2VError(Exception):
    """A problem the user can fix: bad input, bad flag, unreadable file. The message says what to do."""

    quiet = False  # True: exit with `code` but print nothing (a rank of a distributed run whose error another reports)

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class UsageError(W2VError):
    """A bad flag or config value, detected before any work starts (exit code 2, like Click)."""

    def __init__(self, message: str):
        super().__init__(message, code=2)


class Interrupted(W2VError):
    """Training stopped by SIGINT / SIGTERM (exit 130 / 143) or a callback, after saving a checkpoint: the run is
    INCOMPLETE and resumable. One that Ctrl-C (SIGINT) caused is a KeyboardInterrupt too (CtrlC), so that a notebook
    or a script stops there as at any other Ctrl-C, and `except KeyboardInterrupt` catches it."""

    def __new__(cls, message: str = "", code: int = 1):
        return super().__new__(CtrlC if cls is Interrupted and code == 130 else cls, message, code)


class CtrlC(Interrupted, KeyboardInterrupt):
    """Interrupted by Ctrl-C (SIGINT): a KeyboardInterrupt as well."""


class UnsafePickle(W2VError):
    """A pickled file (a gensim .kv) asks for code that such a file never holds; nothing of it was run."""


class StorageError(W2VError):
    """Reading or writing `path` failed (disk full, permissions, I/O error); `errno` is the OS's code."""

    def __init__(self, message: str, errno_: int | None = None, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.errno, self.path = errno_, path


# what to do about the OS errors that storage runs into; anything else gets the caller's advice
_ADVICE = {
    errno.ENOSPC: "free some space on its disk",
    errno.EDQUOT: "free some space (the disk quota is exceeded)",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
    errno.EROFS: "its filesystem is read-only: choose a writable place",
    errno.EFBIG: "the file is larger than its filesystem or a limit allows",
    errno.EIO: "the storage device reported an I/O error",
}


def storage_error(action: str, path: str | os.PathLike, e: OSError, advice: str = "check the path") -> StorageError:
    """One line for a failed read or write: 'cannot write X: No space left on device; free some space ...'."""
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    return StorageError(f"cannot {action} {path}: {reason}; {_ADVICE.get(e.errno, advice)}", e.errno, path)
