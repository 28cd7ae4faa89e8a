"""Queries from the command line: nearest neighbours (word2vec.c's `distance`, fastText's `nn`) and analogies
(word2vec.c's `word-analogy`, fastText's `analogies`).

Both are gensim's `KeyedVectors.most_similar` itself, so the answers are exactly what a gensim user gets:
cosine similarity to the query word, or to the mean of the unit vectors of B and C minus A (3CosAdd), with
the query words themselves left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import vectorfiles
from .errors import UsageError, W2VError


class Vectors:
    """The fields of a pickled gensim KeyedVectors (a run's vectors.kv), loaded without importing gensim, which is
    most of a query's second, and gensim 4's most_similar on them, step for step (unit vectors, their weighted
    mean, re-normalised, cosines, the top n by gensim's partial sort, the query words left out)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def most_similar(self, positive=(), negative=(), topn: int = 10) -> list[tuple[str, float]]:
        positive, negative = ([k] if isinstance(k, str) else list(k) for k in (positive, negative))
        keys = positive + negative
        weights = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))  # float64, as gensim's
        norms = np.linalg.norm(self.vectors, axis=1)  # (V,) float32
        mean = np.zeros(self.vectors.shape[1], self.vectors.dtype)
        for w, key in zip(weights, keys):
            i = self.key_to_index[key]
            mean += w * (self.vectors[i] / norms[i])
        mean = mean / float(np.abs(weights).sum())  # (D,) float64
        length = np.linalg.norm(mean)
        mean = (mean * (1.0 / length) if length > 0 else mean).astype(np.float32)  # gensim's unitvec: x * (1/|x|)
        dists = np.dot(self.vectors, mean) / norms  # (V,)
        n = topn + len(keys)
        if n >= dists.size:
            best = np.argsort(-dists)[:n]
        else:  # gensim's matutils.argsort
            best = np.argpartition(-dists, n)[:n]
            best = best.take(np.argsort((-dists).take(best)))
        skip = {self.key_to_index[k] for k in keys}
        return [(self.index_to_key[i], float(dists[i])) for i in best if i not in skip][:topn]


def load(source: Path, trust_pickle: bool = False):
    """The vectors of a run directory or a .kv file: a plain KeyedVectors pickle without gensim, into Vectors;
    anything else (word2vec files, other gensim classes) through vectorfiles.load_vectors, gensim's loaders and
    checks. Both read a pickle only through vectorfiles' restricted unpickler, unless trust_pickle."""
    path = Path(source) / "vectors.kv" if Path(source).is_dir() else Path(source)
    if path.suffix == ".kv" and not trust_pickle:
        try:
            with open(path, "rb") as f:
                kv = vectorfiles.unpickle(path, f, stand_in=Vectors)
            if isinstance(kv, Vectors) and vectorfiles.well_formed(kv) and np.isfinite(kv.vectors).all():
                return kv
        except W2VError:  # an unsafe file: refused, not read again
            raise
        except Exception:  # anything unexpected: the full loader says what is wrong, or loads it
            pass
    return vectorfiles.load_vectors(source, trust_pickle)


def _check(kv, words: list[str], source) -> None:
    for w in words:
        if w not in kv.key_to_index:
            close = [v for v in (w.lower(), w.capitalize(), w.upper()) if v != w and v in kv.key_to_index]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise W2VError(f"{w!r} is not in the vocabulary of {source}{hint}; query a word it has")


def similar(kv, words: list[str], topn: int = 10, source="the vectors") -> dict[str, list]:
    """For each query word, its topn nearest words as [word, cosine] pairs, best first."""
    if topn <= 0:
        raise UsageError(f"--topn must be > 0 (got {topn})")
    _check(kv, words, source)
    return {w: [[v, float(c)] for v, c in kv.most_similar(w, topn=topn)] for w in words}


def analogy(kv, a: str, b: str, c: str, topn: int = 10, source="the vectors") -> list:
    """A is to B as C is to ?: the topn answers as [word, score] pairs, best first."""
    if topn <= 0:
        raise UsageError(f"--topn must be > 0 (got {topn})")
    _check(kv, [a, b, c], source)
    return [[v, float(s)] for v, s in kv.most_similar(positive=[b, c], negative=[a], topn=topn)]


def format_similar(result: dict[str, list]) -> str:
    blocks = []
    for word, pairs in result.items():
        width = max([len(v) for v, _ in pairs] + [4])
        blocks.append("\n".join([f"nearest to {word!r} (cosine):"]
                                + [f"  {v:<{width}}  {c:.4f}" for v, c in pairs]))
    return "\n\n".join(blocks)


def format_analogy(a: str, b: str, c: str, pairs: list) -> str:
    width = max([len(v) for v, _ in pairs] + [4])
    return "\n".join([f"{a} is to {b} as {c} is to:"] + [f"  {v:<{width}}  {s:.4f}" for v, s in pairs])
