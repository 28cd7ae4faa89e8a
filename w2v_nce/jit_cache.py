"""numba's on-disk cache, made to follow the kernels across files: imported by every module that compiles with
cache=True, before its first decoration.

numba keys a cached kernel to its own file's timestamp only, but our kernels inline functions from other files (a
step in cpu.py or pieces.py runs update.py's and inputs.py's loops): after an edit of update.py alone, or a `git pull`
into an editable install that changed it, cpu.py's kernels loaded the old loops. So each of the package's cached
kernels is keyed, besides, to one hash of every file a kernel can reach (the stages that compile: step, corpus, model,
and tools/query.py): any change there compiles them again, as a new install does.

It also sets, once for the process, the width of the vectors numba compiles for (wide_vectors): imported before any
kernel is decorated, it is the one place that runs before numba makes its code generator; it compiles the training
kernels in a child process (compiled_apart), so that every run runs the machine code of numba's cache; and it makes
processes that compile at once (torchrun's ranks on one machine, two runs started together) take turns: one compiles
a kernel while the others wait and load it (compiled_apart's lock), and numba's cache index, which every save reads,
extends and writes back, is written by one process at a time (one_saver).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; compiles and saves are not serialised there, as in numba itself
    fcntl = None

PACKAGE = Path(__file__).resolve().parent
COMPILED = ("step", "corpus", "model")  # the folders whose modules compile kernels or are inlined into them
ALSO = ("tools/query.py",)
# cores that lower their clock while running 512-bit vector instructions (Intel's first AVX-512 generations), where
# LLVM's preference for 256-bit vectors is right
THROTTLED = {"skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "knl", "knm"}
OURS: set[str] = set()  # the cache folders of the package's kernels (their locators'): the saves one_saver locks


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

            def get_cache_path(self):
                path = super().get_cache_path()
                OURS.add(path)
                return path
        Locator.__name__ = f"W2VNCE{base.__name__.lstrip('_')}"
        return Locator

    impl._locator_classes[0:0] = [keyed(b) for b in bases]
    index = getattr(caching, "IndexDataCacheFile", None)
    if index is not None and hasattr(index, "save") and not hasattr(index.save, "one_saver"):
        index.save = one_saver(index.save)


def one_saver(save):
    """numba's IndexDataCacheFile.save, one process at a time in a folder of ours (OURS). Why: a save reads the
    kernel's index, picks the first free data-file number and writes both back; two processes saving two signatures of
    one kernel at once (two ranks, or a rank and a run, compiling) both take number n, and the index keeps one key
    while the data file holds the other's machine code, which a later run would load for the wrong types."""
    def locked(self, key, data):
        if self._cache_path not in OURS:
            return save(self, key, data)
        with _flock(self._index_path + ".lock"):
            return save(self, key, data)
    locked.one_saver = True
    return locked


@contextlib.contextmanager
def _flock(path: str):
    """Hold the OS's exclusive lock on the file `path` (made if need be) for the block, waiting for it; without flock,
    or where the file cannot be made, the block runs unlocked (as numba runs it)."""
    fd = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


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


def compiled_apart(kernel, *args) -> None:
    """Before a run's first call of `kernel` (a parallel kernel with cache=True) on these arguments: if numba's cache
    lacks its machine code for their types, compile it in a child process, which writes it there, so that this
    process loads it from the cache like every later run. Why: a parallel kernel that numba compiles in the process
    computes otherwise than the same kernel loaded from its cache (measured; where in numba was not found): one
    thread's vectors differed in the last bits (3e-8 after two epochs of the Lee corpus) between the first run after
    an install or an edit and every run after it; from the cache, they are the same in every run
    (docs/benchmarks-log.md section 23). Processes that need one kernel for the same types at once take turns (a
    lock file beside its cache index): the first compiles it, the others wait and find it in the cache, where each
    would otherwise compile it again on a core of its own. Where the child cannot (no writable cache, a numba whose
    cache this does not know, a kernel it cannot import, any failure), the call compiles in the process, as numba
    would."""
    try:
        sig = tuple(kernel.typeof_pyval(a) for a in args)
        if sig in kernel.overloads or _cached(kernel, sig):
            return
        func = kernel.py_func
        # the child imports as this process did (its sys.path) before it reads the types, which name our classes
        job = pickle.dumps((sys.path, pickle.dumps((func.__module__, func.__qualname__, sig))))
        turn = hashlib.sha1(str(sig).encode()).hexdigest()[:12]
        with _flock(f"{kernel._cache._cache_file._index_path}.{turn}.lock"):
            if _cached(kernel, sig):  # another process compiled it while this one waited
                return
            subprocess.run([sys.executable, "-c", CHILD], input=job, capture_output=True, check=False)
    except Exception:  # numba's internals (a version that keeps its cache otherwise), a child that cannot start
        return


CHILD = ("import pickle, sys; path, job = pickle.load(sys.stdin.buffer); sys.path[:] = path; "
         "from w2v_nce import jit_cache; jit_cache._compile_job(job)")


def _cached(kernel, sig) -> bool:
    """Whether numba's cache holds kernel's machine code for the argument types sig (numba's own key; its index is a
    small file)."""
    cache = kernel._cache
    return cache._index_key(sig, kernel.targetctx.codegen()) in cache._cache_file._load_index()


def _compile_job(job: bytes) -> None:
    """compiled_apart's child: compile the kernel the job names for the types it gives, saved to numba's cache."""
    import importlib

    module, name, sig = pickle.loads(job)
    getattr(importlib.import_module(module), name).compile(sig)


try:
    import numba  # noqa: F401 (the package's modules import it themselves)
except ImportError:
    pass
else:
    _install()
    wide_vectors()
