"""Reading vectors files: a run directory's vectors.kv, gensim .kv files, word2vec text and binary.

A .kv file is a Python pickle, and unpickling a file runs whatever it names: a shared or downloaded file could
call os.system. So a .kv file is read here only by an unpickler that admits what gensim's KeyedVectors and
FastTextKeyedVectors files hold (those classes and numpy's array, dtype and scalar reconstruction) and refuses
anything else before it is called; the arrays gensim writes beside a large file (NAME.vectors.npy) are read
with allow_pickle=False, and a file that asks gensim to unpickle a side file is refused too. A user who trusts
a file that asks for more loads it with gensim's own loader: --trust-pickle, trust_pickle=True.

gensim is imported only where a gensim object is built: query.py reads a run's vectors.kv into its own stand-in
class (without gensim's import time) through the same unpickler.
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import pickle
import warnings
from pathlib import Path

import numpy as np

from ..run import rundir
from ..errors import UnsafePickle, W2VError, storage_error

# The classes of gensim 4's KeyedVectors files; gensim 3's names that gensim 4 still reads as these are admitted too
KEYED_VECTORS = {("gensim.models.keyedvectors", n) for n in ("KeyedVectors", "Word2VecKeyedVectors",
                                                             "EuclideanKeyedVectors")}
_GENSIM = KEYED_VECTORS | {("gensim.models.keyedvectors", "Vocab"),  # gensim 3's word record (CompatVocab in 4)
                           ("gensim.models.keyedvectors", "CompatVocab"),
                           ("gensim.models.fasttext", "FastTextKeyedVectors")}
# numpy's reconstruction of arrays, dtypes and scalars, under the module names numpy 1 (core) and 2 (_core) write
_NUMPY = ({("numpy", "ndarray"), ("numpy", "dtype")}
          | {(f"numpy.{core}.{m}", n) for core in ("core", "_core")
             for m, n in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))})
# gensim's SaveLoad lists of attributes stored beside the pickle: arrays (read here), attributes to set to None, and
# two that make gensim unpickle more files (never in a KeyedVectors file: refused)
_SIDE_ARRAYS, _IGNORED, _UNPICKLED = "__numpys", "__ignoreds", ("__scipys", "__recursive_saveloads")
TRUST = "--trust-pickle (trust_pickle=True in Python)"


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, stand_in: type | None):
        super().__init__(file, encoding="latin1")  # as gensim reads: files pickled by Python 2 too
        self.path, self.stand_in = path, stand_in

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY:
            return _numpy(module, name, self.path)
        if (module, name) in _GENSIM:
            if self.stand_in is None:
                return getattr(importlib.import_module(module), name)
            if (module, name) in KEYED_VECTORS:
                return self.stand_in
            raise LookupError(f"{module}.{name} needs gensim")  # query.load reads it with gensim instead
        raise _unsafe(self.path, f"asks to load {module}.{name}")


def _unsafe(path: Path, asks: str) -> UnsafePickle:
    return UnsafePickle(f"{path} {asks}, which a gensim KeyedVectors file never does: the file may be unsafe and "
                        f"nothing of it was run; if you trust where it came from, load it anyway with {TRUST}")


def _numpy(module: str, name: str, path: Path):
    """numpy's own function, under the name this numpy has (numpy 2 moved numpy.core to numpy._core and warns on
    the old name; numpy 1 has only numpy.core)."""
    for m in dict.fromkeys((module.replace("numpy.core.", "numpy._core."), module.replace("._core.", ".core."))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return getattr(importlib.import_module(m), name)
        except (ImportError, AttributeError):
            continue
    raise W2VError(f"{path} was written with a newer numpy ({module}.{name}); upgrade numpy (here {np.__version__})")


def unpickle(path: Path, file, stand_in: type | None = None):
    """The object the .kv pickle `file` (opened from `path`) holds, with the arrays gensim stored beside it read in.
    stand_in: a class built instead of gensim's KeyedVectors, without importing gensim (query.Vectors); another
    gensim class then raises LookupError. A name outside the admitted classes raises UnsafePickle before it runs."""
    obj = _Unpickler(file, path, stand_in).load()
    state = getattr(obj, "__dict__", None)
    if state is None:
        return obj  # not an object with attributes: the caller says what it is
    for key in _UNPICKLED:
        if state.get(key):
            raise _unsafe(path, f"asks to unpickle the files beside it ({key} {state[key]!r})")
    methods = [k for k in state if callable(getattr(type(obj), k, None))]
    if methods:
        raise _unsafe(path, f"replaces the method {methods[0]!r} of {type(obj).__name__}")
    compressed = path.name.endswith((".gz", ".bz2"))  # gensim's rule: then its side arrays are .npz
    for key in (_SIDE_ARRAYS, _IGNORED):
        names = state.get(key) or []
        bad = [n for n in names if not (isinstance(n, str) and n.isidentifier() and not hasattr(type(obj), n))]
        if not isinstance(names, list) or bad:
            raise W2VError(f"{path} names side arrays that no gensim file has ({bad or names!r}); the file is "
                           "corrupt: re-export it with `w2v-nce export`")
        for n in names:
            state[n] = None if key == _IGNORED else _side_array(path, n, compressed)
    for key in (_SIDE_ARRAYS, _IGNORED) + _UNPICKLED:
        if key in state:
            state[key] = []  # read: gensim's _load_specials, which may run next, has nothing left to load
    return obj


def _side_array(path: Path, name: str, compressed: bool) -> np.ndarray:
    side = path.with_name(f"{path.name}.{name}.{'npz' if compressed else 'npy'}")  # gensim's subname()
    try:
        if compressed:
            with np.load(side, allow_pickle=False) as data:
                return data["val"]
        return np.load(side, allow_pickle=False)
    except OSError as e:
        raise storage_error("read", side, e, f"it holds {path}'s {name} array: keep it beside {path.name}") from None
    except ValueError as e:  # an object array (allow_pickle=False refuses it) or a damaged file
        raise W2VError(f"cannot read {side} (the {name} array of {path}): {_one_line(e)}; the file is corrupt "
                       f"or unsafe") from None


def open_kv(path: Path):
    """A .kv file as gensim's loader opens it: .gz and .bz2 decompressed."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def read_kv(path: Path, trust_pickle: bool = False):
    """A gensim .kv file as gensim's KeyedVectors.load returns it, through the restricted unpickler (or, trusted,
    gensim's own), gensim's up-conversions of older files included."""
    from gensim.models import KeyedVectors
    if trust_pickle:
        return KeyedVectors.load(str(path))
    with open_kv(path) as f:
        kv = unpickle(path, f)
    if isinstance(kv, KeyedVectors):
        suffix = "npz" if path.name.endswith((".gz", ".bz2")) else "npy"
        kv._load_specials(str(path), None, suffix == "npz", lambda *parts: ".".join(parts + (suffix,)))
    return kv


def well_formed(kv) -> bool:
    """Whether the loaded object has the fields a query and an evaluation read, of the right types and sizes."""
    vectors, words, index = (getattr(kv, a, None) for a in ("vectors", "index_to_key", "key_to_index"))
    return (isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype.kind == "f"
            and isinstance(words, list) and isinstance(index, dict) and len(words) == len(vectors))


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def sniff(path: Path, f=None) -> str:
    """'kv', 'word2vec' or 'word2vec-binary', from the content (the suffix may lie). f: the file already open (and
    decompressed) at its start, as query.py opens it without gensim; without it, opened as gensim's loaders do."""
    if f is None:
        from gensim import utils
        with utils.open(str(path), "rb") as f:  # smart_open: .gz/.bz2 word2vec files work too
            return sniff(path, f)
    first = f.readline(4096)
    if first[:1] == b"\x80":  # the PROTO opcode every pickle of protocol >= 2 starts with
        return "kv"
    try:
        count, dim = (int(x) for x in first.decode("ascii").split())
    except (UnicodeDecodeError, ValueError):
        count = dim = -1
    if count < 0 or dim < 1:
        raise W2VError(
            f"{path} is not a vectors file: a gensim .kv file or a word2vec file starting with a "
            f"'COUNT DIM' line; re-export it with `w2v-nce export`"
        )
    # A text record is `word v1 ... vD` on one line; the first record of a binary file is not.
    # Text is decided on that shape alone, so that a text file with the wrong number of values
    # per line fails in gensim's text reader instead of being misread as binary.
    record = f.readline(1 << 20)
    if count == 0 or not record:
        return "word2vec"  # nothing to tell them apart; gensim's text reader reports truncation
    try:
        parts = record.rstrip().decode("utf-8").split(" ")  # gensim's text parsing
        _ = [float(x) for x in parts[1:]]  # ValueError unless the rest are numbers
    except (UnicodeDecodeError, ValueError):
        return "word2vec-binary"
    return "word2vec" if len(parts) >= 2 else "word2vec-binary"


def load_vectors(path: str | Path, trust_pickle: bool = False):
    """Load a run directory (its vectors.kv), a gensim .kv file, or a word2vec text or binary file, as gensim
    KeyedVectors. A .kv file is read by the restricted unpickler unless trust_pickle."""
    from gensim.models import KeyedVectors

    path, run = Path(path), None
    fix = "re-export it with `w2v-nce export`"
    if path.is_dir():
        run, path = path, path / rundir.VECTORS
        if not path.exists() and rundir.interrupted(run):
            raise rundir.not_finished(run)
        if not path.exists() and not (run / rundir.CONFIG).exists():
            raise W2VError(f"{run} has no {rundir.VECTORS}; pass a run directory made by `w2v-nce train` or a "
                           "vectors file")
        # a finished run's vectors are its checkpoint's input matrix: they can be written again from it
        fix = f"write it again from the run's checkpoint with: w2v-nce export {run} --checkpoint --out {path}"
    if not path.exists():
        raise W2VError(f"{path} does not exist; "
                       + (fix if run else "pass a run directory or a vectors file (.kv, .txt, .bin)"))
    try:
        fmt = sniff(path)
    except OSError as e:
        raise storage_error("read", path, e, "check the path") from None
    try:
        if fmt == "kv":
            kv = read_kv(path, trust_pickle)
        else:
            kv = KeyedVectors.load_word2vec_format(str(path), binary=(fmt == "word2vec-binary"))
    except W2VError:
        raise
    # Whatever else a reader trips over (EOFError, UnpicklingError, ValueError, ...) means the same thing to the
    # user: the file is damaged.
    except Exception as e:
        raise W2VError(f"cannot read {path} as {fmt}: {_one_line(e)}; the file is truncated or corrupt: {fix}") from e
    if not isinstance(kv, KeyedVectors):
        raise W2VError(f"{path} holds a {type(kv).__name__}, not gensim KeyedVectors; save model.wv instead")
    if not well_formed(kv) or kv.vectors.shape[1] != kv.vector_size:
        shape = getattr(getattr(kv, "vectors", None), "shape", None)
        raise W2VError(f"{path} is inconsistent (vectors {shape} for {len(getattr(kv, 'index_to_key', []) or [])} "
                       f"words); {fix}")
    if not np.isfinite(kv.vectors).all():  # a corrupt file, or the vectors of a diverged model
        raise W2VError(f"{path} holds values that are not finite numbers (corrupt); {fix}")
    return kv
