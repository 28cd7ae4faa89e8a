"""numba's on-disk cache, made to follow the kernels across files: imported by every module that compiles with
cache=True, before its first decoration.

numba keys a cached kernel to its own file's timestamp only, but our kernels inline functions from other files (a
step in cpu.py or pieces.py runs update.py's and inputs.py's loops): after an edit of update.py alone, or a `git pull`
into an editable install that changed it, cpu.py's kernels loaded the old loops. So each of the package's cached
kernels is keyed, besides, to one hash of every file a kernel can reach (the stages that compile: step, corpus, model,
and tools/query.py): any change there compiles them again, as a new install does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
COMPILED = ("step", "corpus", "model")  # the folders whose modules compile kernels or are inlined into them
ALSO = ("tools/query.py",)


def source_hash() -> str:
    """One hash of every file a kernel can reach, by name and content."""
    h = hashlib.sha1()
    files = sorted(p for d in COMPILED for p in (PACKAGE / d).glob("*.py")) + [PACKAGE / f for f in ALSO]
    for path in files:
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _install() -> None:
    """Put, ahead of numba's own locators, ones that find the package's caches where numba's would and stamp them
    with source_hash() as well; a file outside the package is left to numba's."""
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases = [getattr(caching, n, None) or getattr(caching, "_" + n, None) for n in names]
    if impl is None or not hasattr(impl, "_locator_classes") or None in bases:
        return  # a numba whose caching we do not know: its own rule (docs/troubleshooting.md)
    stamp = source_hash()

    def keyed(base):
        class Locator(base):
            @classmethod
            def from_function(cls, py_func, py_file):
                try:
                    inside = Path(py_file).resolve().is_relative_to(PACKAGE)
                except (OSError, ValueError):
                    inside = False
                return super().from_function(py_func, py_file) if inside else None

            def get_source_stamp(self):
                return super().get_source_stamp(), stamp
        Locator.__name__ = f"W2VNCE{base.__name__.lstrip('_')}"
        return Locator

    impl._locator_classes[0:0] = [keyed(b) for b in bases]


try:
    import numba  # noqa: F401 (the package's modules import it themselves)
except ImportError:
    pass
else:
    _install()
