"""A run in fastText's own model format (.bin, version 12), which fastText's `load_model` (C++ and Python) and gensim's
`load_facebook_vectors` / `load_facebook_model` read: words never seen get vectors there from the n-gram rows.

The layout, as fastText's FastText::saveModel writes it (and gensim's _fasttext_bin reads it): the magic number and
version (int32 each); Args (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
lrUpdateRate as int32, then t as a double); the Dictionary (size, nwords, nlabels as int32, ntokens and the pruning
index's size, -1 for none, as int64, then each word as its UTF-8 bytes, a NUL, its count as int64 and its type, 0 for
a word, as int8); a bool (not quantised); the input matrix (rows and columns as int64, then float32 row by row: the
words' rows, then the buckets'); a bool; the output matrix likewise. Little-endian, as fastText on the machines
that run it. fastText rebuilds each word's n-gram list from the words, minn, maxn and bucket, with the same hash as
corpus/subwords.py: so a word's rows are ours, in our order.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..files import atomic_path

MAGIC, VERSION = 793712314, 12
LOSS = {"hs": 1, "neg": 2, "nce": 2, "infonce": 3, "sampled-softmax": 3, "softmax": 3}  # fastText's hs, ns, softmax
MODEL = {"cbow": 1, "sg": 2}
LR_UPDATE_RATE = 100  # fastText's default; read back, not used by the vectors
BLOCK = 65536  # buckets written at a time (26 MB at dim 100)


def write(path: str | Path, run: dict, tokens: int) -> None:
    """The run (rundir.load_run's dict) as a fastText .bin at `path`, atomically. Its output matrix: the head's rows
    where it has one a word; hs's rows are the inner nodes of our tree, not fastText's, so there it is zero (the
    vectors do not use it)."""
    cfg, words, counts = run["config"], run["words"], run["counts"]
    sub = run["subwords"]
    rows = (sub["rows"] if sub is not None else run["input"]).numpy()
    minn, maxn = sub["lengths"] if sub is not None else (0, 0)
    buckets = sub["buckets"] if sub is not None else 0
    out = run["head"].weight.detach().numpy()
    if out.shape[0] != len(words):
        out = np.zeros((len(words), rows.shape[1]), np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<ii", MAGIC, VERSION))
        f.write(struct.pack("<12id", cfg.dim, cfg.window, cfg.epochs, cfg.min_count, cfg.negatives, 1, LOSS[cfg.loss],
                            MODEL[cfg.model], buckets, minn, maxn, LR_UPDATE_RATE, cfg.sample))
        f.write(struct.pack("<iiiqq", len(words), len(words), 0, tokens, -1))
        for word, count in zip(words, counts.tolist()):
            f.write(word.encode("utf-8") + b"\0" + struct.pack("<qb", count, 0))
        v = len(words)
        f.write(struct.pack("<?qq", False, v + buckets, rows.shape[1]))
        _write_rows(f, rows[:v])
        # the run has a row only for the buckets its words use (subwords.run_table); fastText's file has every one
        used = sub["used"].numpy() if sub is not None else np.zeros(0, np.int64)
        for b in range(0, buckets, BLOCK):
            block = np.zeros((min(BLOCK, buckets - b), rows.shape[1]), np.float32)
            a, z = np.searchsorted(used, (b, b + len(block)))
            block[used[a:z] - b] = rows[v + a:v + z]
            _write_rows(f, block)
        f.write(struct.pack("<?qq", False, *out.shape))
        _write_rows(f, out)


def _write_rows(f, matrix: np.ndarray) -> None:
    f.write(memoryview(np.ascontiguousarray(matrix, dtype="<f4")).cast("B"))  # no copy of a large matrix
