"""numba's on-disk cache, made to follow the kernels across files: imported by every module that compiles with
cache=True, before its first decoration.

numba keys a cached kernel to its own file's timestamp only, but our kernels inline functions from other files (a
step in cpu.py or pieces.py runs update.py's and inputs.py's loops): after an edit of update.py alone, or a `git pull`
into an editable install that changed it, cpu.py's kernels loaded the old loops. So each of the package's cached
kernels is keyed, besides, to one hash of every file a kernel can reach (the stages that compile: step, corpus, model,
and tools/query.py): any change there compiles them again, as a new install does.

It also sets, once for the process, the width of the vectors numba compiles for (wide_vectors): imported before any
kernel is decorated, it is the one place that runs before numba makes its code generator.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
COMPILED = ("step", "corpus", "model")  # the folders whose modules compile kernels or are inlined into them
ALSO = ("tools/query.py",)
# cores that lower their clock while running 512-bit vector instructions (Intel's first AVX-512 generations), where
# LLVM's preference for 256-bit vectors is right
THROTTLED = {"skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "knl", "knm"}


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


def wide_features(features: str, cpu: str) -> str | None:
    """The feature string for numba's compiler that lets it use 512-bit vectors on this host (llvmlite's host
    `features` and `cpu` name), or None to keep numba's choice: cores without AVX-512, and the first generations,
    which lower their clock while running it (THROTTLED), where LLVM's default is right."""
    if "+avx512f" not in features.split(",") or cpu in THROTTLED:
        return None
    return features + ",-prefer-256-bit"


def wide_vectors() -> None:
    """Let numba's compiler use 512-bit vectors where the core runs them at full clock (wide_features). LLVM uses
    256-bit vectors on every AVX-512 core by default (its `prefer-256-bit` tuning, made for the first generations'
    clock drop): a 100-dim row is then 13 instructions where it could be 7. Measured on an Emerald Rapids Xeon, whole
    `train` runs alternated (docs/benchmarks-log.md section 17): cbow-neg 1.03-1.10x, sg-neg 1.05-1.17x on a 20 MB
    slice and within the drift on the whole corpus, no change for sg-hs and the infonce heads; the scores within the
    seeds' spread (float sums in another order, the same estimator). It must be set before numba makes its code
    generator (at the first decorated function of the process); a user's own NUMBA_CPU_NAME or NUMBA_CPU_FEATURES
    is kept as it is."""
    import os

    import llvmlite.binding as ll
    from numba import config

    if os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES") or config.CPU_FEATURES is not None:
        return
    try:
        features, cpu = ll.get_host_cpu_features().flatten(), ll.get_host_cpu_name()
    except RuntimeError:  # llvmlite cannot read this host's features: numba's own choice
        return
    config.CPU_FEATURES = wide_features(features, cpu)


try:
    import numba  # noqa: F401 (the package's modules import it themselves)
except ImportError:
    pass
else:
    _install()
    wide_vectors()
