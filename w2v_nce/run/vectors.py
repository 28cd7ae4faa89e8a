"""A run's vectors as gensim's KeyedVectors: the object (to_keyed_vectors) and the run's vectors.kv (write_kv),
the same pickle gensim's KeyedVectors.save writes, made without importing gensim."""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import atomic_path

if TYPE_CHECKING:
    from gensim.models import KeyedVectors


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
    """A run's vectors.kv, atomically, without importing gensim (whose import is a fifth of a small run's command):
    the pickle of to_keyed_vectors(words, counts, vectors), which gensim's KeyedVectors.load and our loaders read as
    they read export.save_kv's (tests/test_export.py). The object's state follows its class: pickle's own stream for the fields
    (PROTO again, frames, numpy's arrays), its STOP turned into BUILD (the fields are the object's) and STOP."""
    fields = _fields(words, counts, vectors)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(_KV_HEAD)
        pickle.Pickler(f, protocol=5).dump(fields)
        f.seek(-1, os.SEEK_END)
        f.write(b"b.")


def to_fasttext_vectors(words: list[str], counts: np.ndarray, rows: np.ndarray, offsets: np.ndarray,
                        sub_rows: np.ndarray, lengths: tuple[int, int], buckets: int, used: np.ndarray,
                        jamo: bool = False):
    """A subword run's vectors as gensim's FastTextKeyedVectors, which answers words never seen from their n-grams:
    rows (V + U, D) the input rows (the words' own, then those of the U buckets `used`), offsets and sub_rows each
    word's rows (corpus/subwords.run_table). Its words' vectors are the mean of their rows, as the run's vectors.kv
    holds them; the buckets no word of the run uses are zero (never trained: fastText leaves them at their random
    start). With jamo, a JamoKeyedVectors, whose words never seen get their jamo n-grams too."""
    v = len(words)
    kv = (_jamo_class() if jamo else _fasttext_class())(rows.shape[1], lengths[0], lengths[1], buckets, count=0,
                                                         dtype=np.float32)
    composed = np.add.reduceat(rows[sub_rows], offsets[:-1], axis=0) / np.diff(offsets)[:, None] if v else rows[:0]
    kv.__dict__.update(_fields(words, counts, composed))
    kv.vectors_vocab = np.ascontiguousarray(rows[:v])
    kv.vectors_ngrams = all_buckets(rows, v, buckets, used)
    kv.buckets_word = [used[sub_rows[offsets[w] + 1:offsets[w + 1]] - v].astype(np.uint32) for w in range(v)]
    return kv


def all_buckets(rows: np.ndarray, v: int, buckets: int, used: np.ndarray) -> np.ndarray:
    """(buckets, D) float32: the n-gram rows of a run (rows (V + U, D)) in fastText's layout, a row every bucket,
    zero where no word uses it (np.zeros: pages no row is written to are never touched)."""
    full = np.zeros((buckets, rows.shape[1]), np.float32)
    full[used] = rows[v:]
    return full


def of_run(run: dict):
    """The vectors of a run loaded by rundir.load_run: KeyedVectors, or FastTextKeyedVectors with subwords."""
    s = run["subwords"]
    if s is None:
        return to_keyed_vectors(run["words"], run["counts"], run["input"].numpy())
    return to_fasttext_vectors(run["words"], run["counts"], s["rows"].numpy(), s["offsets"].numpy(),
                               s["sub_rows"].numpy(), s["lengths"], s["buckets"], s["used"].numpy(), s["jamo"])


def _fasttext_class():
    from gensim.models.fasttext import FastTextKeyedVectors
    return FastTextKeyedVectors


@functools.cache
def _jamo_class():
    """gensim's FastTextKeyedVectors, whose words never seen are the mean of their character n-grams' rows and, for
    Hangul, their jamo n-grams' (corpus/subwords.word_rows): the vectors of a --jamo run, made here only (gensim,
    fastText and our file readers know no jamo n-grams, so it is not a file format)."""
    from gensim.models.fasttext import FastTextKeyedVectors

    from ..corpus.subwords import word_rows

    class JamoKeyedVectors(FastTextKeyedVectors):
        def get_vector(self, word, norm=False):
            if word in self.key_to_index or not word:
                return super().get_vector(word, norm=norm)
            rows = word_rows(word, self.min_n, self.max_n, self.bucket, True)
            if not len(rows):  # no n-gram: the origin, as gensim and fastText answer
                return np.zeros(self.vector_size, dtype=np.float32)
            vec = self.vectors_ngrams[rows].mean(0)
            return vec / np.linalg.norm(vec) if norm else vec

    return JamoKeyedVectors
