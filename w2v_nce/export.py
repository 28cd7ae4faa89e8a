"""Export: turn trained vectors into a gensim KeyedVectors and write them in the formats people load.

A run directory holds `vectors.kv` (a gensim pickle). `export` converts it, or any vectors file
`vectorfiles.load_vectors` accepts, into the C word2vec text or binary format. Those two outputs are
written by gensim's own `save_word2vec_format`, so they are byte-for-byte what gensim would write.
With checkpoint=True it writes the input vectors of a run's checkpoint instead: the latest state of an
interrupted run, or a finished run's vectors again.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import rundir
from .errors import UsageError, W2VError
from .files import atomic_path
from .vectorfiles import load_vectors

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

FORMATS = ("kv", "word2vec", "word2vec-binary", "projector")
_SUFFIX = {"kv": ".kv", "word2vec": ".txt", "word2vec-binary": ".bin", "projector": ""}
_FROM_SUFFIX = {".kv": "kv", ".txt": "word2vec", ".vec": "word2vec", ".bin": "word2vec-binary"}


def _fields(words: list[str], counts: np.ndarray, vectors: np.ndarray) -> dict:
    """The fields of the KeyedVectors of (V,) words, (V,) counts and (V, D) vectors, checked, in the given order.

    The fields are assigned directly: gensim's add_vector(s) path reallocates per call or loops in
    Python, which is slow for a million words. `words` must be in descending-count order, because
    save_word2vec_format re-sorts by the 'count' attribute (a stable sort, so ties keep our order).
    """
    counts = np.asarray(counts)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors) or counts.shape != (len(words),):
        raise ValueError(
            f"need V words, (V,) counts, (V, D) vectors; got {len(words)}, {counts.shape}, {vectors.shape}")
    if len(counts) > 1 and np.any(np.diff(counts) > 0):
        raise ValueError("counts must be in descending order: word2vec files are written most frequent first")
    if len(set(words)) != len(words):
        raise ValueError("words must be unique")
    # The word2vec formats separate a word from its vector by a space and records by a newline.
    if any(not w or " " in w or "\n" in w for w in words):
        raise ValueError("words must be non-empty and contain no space or newline")
    # gensim's KeyedVectors.__init__'s fields, in its order; the dtype set_vecattr gives ints
    return {"vector_size": vectors.shape[1], "index_to_key": list(words), "next_index": len(words),
            "key_to_index": {w: i for i, w in enumerate(words)}, "vectors": vectors, "norms": None,
            "expandos": {"count": counts.astype(np.int64)}, "mapfile_path": None}


def to_keyed_vectors(words: list[str], counts: np.ndarray, vectors: np.ndarray) -> KeyedVectors:
    """Wrap (V,) words, (V,) counts and (V, D) vectors in a gensim KeyedVectors, keeping the given word order."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1], count=0, dtype=np.float32)
    kv.__dict__.update(_fields(words, counts, vectors))
    return kv


# PROTO 5; the class by STACK_GLOBAL (module, name); NEWOBJ of it with no arguments: how pickle begins an object of a
# class without __reduce__, here written without importing the class
_KV_HEAD = b"\x80\x05" + b"".join(b"\x8c" + bytes([len(s)]) + s for s in (b"gensim.models.keyedvectors",
                                                                         b"KeyedVectors")) + b"\x93)\x81"


def write_kv(words: list[str], counts: np.ndarray, vectors: np.ndarray, path: str | Path) -> None:
    """A run's vectors.kv, atomically, without importing gensim (0.4 s, a fifth of a small run's command): the pickle
    of to_keyed_vectors(words, counts, vectors), which gensim's KeyedVectors.load and our loaders read as they read
    save_kv's (tests/test_export.py). The object's state follows its class: pickle's own stream for the fields
    (PROTO again, frames, numpy's arrays), its STOP turned into BUILD (the fields are the object's) and STOP."""
    fields = _fields(words, counts, vectors)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(_KV_HEAD)
        pickle.Pickler(f, protocol=5).dump(fields)
        f.seek(-1, os.SEEK_END)
        f.write(b"b.")


def save_kv(kv: KeyedVectors, path: str | Path) -> None:
    """Save `kv` to `path` as ONE gensim pickle file, atomically.

    Given a file name, gensim stores large arrays in side files named after it (`<name>.vectors.npy`),
    which would be named after our temporary file. Given an open handle it pickles everything into
    that handle, so the temp-then-rename of atomic_path covers the whole result.
    Protocol 5 pickles numpy arrays without an extra in-memory copy; KeyedVectors.load reads it.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        kv.save(f, pickle_protocol=5)


def save_projector(kv: KeyedVectors, prefix: str | Path) -> Path:
    """TensorBoard's projector files, PREFIX_tensor.tsv (a vector a line, tab-separated) and PREFIX_metadata.tsv (a
    word a line), as gensim's word2vec2tensor writes them for the same vectors (each number as str() of its
    float32). Load them at projector.tensorflow.org ("Load") or in TensorBoard. Returns the tensor file."""
    prefix = Path(prefix)
    tensor, meta = (prefix.with_name(f"{prefix.name}_{part}.tsv") for part in ("tensor", "metadata"))
    with atomic_path(tensor) as t, atomic_path(meta) as m, open(t, "wb") as ft, open(m, "wb") as fm:
        for word, row in zip(kv.index_to_key, kv.vectors):
            fm.write(word.encode("utf-8") + b"\n")
            ft.write("\t".join(str(x) for x in row).encode("utf-8") + b"\n")
    return tensor


def format_from_suffix(path: str | Path) -> str:
    """The export format implied by a file name: .kv, .txt/.vec or .bin."""
    fmt = _FROM_SUFFIX.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {path} from its suffix; "
            f"pass --format ({', '.join(FORMATS)}) or use .kv, .txt, .vec or .bin"
        )
    return fmt


def export(source: Path, out: Path | None = None, fmt: str | None = None, checkpoint: bool = False,
           trust_pickle: bool = False) -> tuple[Path, str]:
    """Write the vectors of `source` (a run directory or a vectors file) to `out` in format `fmt`.

    Defaults: fmt from out's suffix, else word2vec text; out is `<run dir>/vectors.<ext>` for a run
    directory (`checkpoint-vectors.<ext>` with checkpoint=True), or `source` with the format's extension
    for a file. A .kv source is read by vectorfiles' restricted unpickler unless trust_pickle. Returns (written
    path, fmt).
    """
    source = Path(source)
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if checkpoint and not source.is_dir():
        raise UsageError(f"--checkpoint needs a run directory; {source} is not one")
    if fmt is None:
        fmt = format_from_suffix(out) if out is not None else "word2vec"
    if out is None:
        name = "checkpoint-vectors" if checkpoint else "vectors"
        out = source / f"{name}{_SUFFIX[fmt]}" if source.is_dir() else source.with_suffix(_SUFFIX[fmt])
    out = Path(out)
    if out.is_dir():
        raise W2VError(f"cannot write {out}: it is a directory; pass a file name such as {out}/vectors{_SUFFIX[fmt]}")

    if checkpoint:
        run = rundir.load_run(source)
        kv = to_keyed_vectors(run["words"], run["counts"], run["input"].numpy())
    else:
        kv = load_vectors(source, trust_pickle)
    # a file written into a run directory is a write of that run: not while another process trains it
    into_run = (out.parent / rundir.CONFIG).is_file()
    with rundir.hold(out.parent, "wait for it to finish, or write elsewhere with --out FILE") if into_run \
            else contextlib.nullcontext():
        if fmt == "kv":
            save_kv(kv, out)
        elif fmt == "projector":
            return save_projector(kv, out), fmt
        else:
            with atomic_path(out) as tmp:
                kv.save_word2vec_format(str(tmp), binary=(fmt == "word2vec-binary"))
    return out, fmt
