"""Export: turn trained vectors into a gensim KeyedVectors and write them in the formats people load.

A run directory holds `vectors.kv` (a gensim pickle). `export` converts it, or any vectors file
`vectorfiles.load_vectors` accepts, into the C word2vec text or binary format; a run directory also into fastText's
model format (fasttext_bin.py), whose readers answer words never seen from a subword run's n-gram rows. Those two outputs are
written by gensim's own `save_word2vec_format`, so they are byte-for-byte what gensim would write.
With checkpoint=True it writes the input vectors of a run's checkpoint instead: the latest state of an
interrupted run, or a finished run's vectors again.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..run import rundir
from ..errors import UsageError, W2VError
from ..files import atomic_path
from ..run.vectors import to_keyed_vectors
from . import fasttext_bin
from .vectorfiles import load_vectors

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

FORMATS = ("kv", "word2vec", "word2vec-binary", "projector", "fasttext")
_SUFFIX = {"kv": ".kv", "word2vec": ".txt", "word2vec-binary": ".bin", "projector": "", "fasttext": ".ft.bin"}
_FROM_SUFFIX = {".kv": "kv", ".txt": "word2vec", ".vec": "word2vec", ".bin": "word2vec-binary"}


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

    if fmt == "fasttext" and not (source / rundir.CONFIG).is_file():
        raise UsageError(f"--format fasttext needs a run directory (the n-gram rows are in its checkpoint); {source} "
                         "is not one")
    if checkpoint or fmt == "fasttext":
        run = rundir.load_run(source)
        if fmt == "fasttext" and run["subwords"] is not None and run["subwords"]["jamo"]:
            raise UsageError(f"{source} was trained with --jamo, whose jamo n-grams fastText's readers do not make: "
                             "export it as kv or word2vec (its words), or use w2v_nce.load(RUN).vectors")
        kv = to_keyed_vectors(run["words"], run["counts"], run["input"].numpy())
    else:
        kv = load_vectors(source, trust_pickle)
    # a file written into a run directory is a write of that run: not while another process trains it
    into_run = (out.parent / rundir.CONFIG).is_file()
    with rundir.hold(out.parent, "wait for it to finish, or write elsewhere with --out FILE") if into_run \
            else contextlib.nullcontext():
        if fmt == "kv":
            save_kv(kv, out)
        elif fmt == "fasttext":
            fasttext_bin.write(out, run, int(rundir.read_config(source)[1].get("tokens", 0)))
        elif fmt == "projector":
            return save_projector(kv, out), fmt
        else:
            with atomic_path(out) as tmp:
                kv.save_word2vec_format(str(tmp), binary=(fmt == "word2vec-binary"))
    return out, fmt
