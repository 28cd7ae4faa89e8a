"""Queries from the command line: nearest neighbours (word2vec.c's `distance`, fastText's `nn`) and analogies
(word2vec.c's `word-analogy`, fastText's `analogies`).

Both are gensim's `KeyedVectors.most_similar` itself, so the answers are exactly what a gensim user gets:
cosine similarity to the query word, or to the mean of the unit vectors of B and C minus A (3CosAdd), with
the query words themselves left out.
"""

from __future__ import annotations

from gensim.models import KeyedVectors

from .errors import UsageError, W2VError


def _check(kv: KeyedVectors, words: list[str], source) -> None:
    for w in words:
        if w not in kv.key_to_index:
            close = [v for v in (w.lower(), w.capitalize(), w.upper()) if v != w and v in kv.key_to_index]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise W2VError(f"{w!r} is not in the vocabulary of {source}{hint}; query a word it has")


def similar(kv: KeyedVectors, words: list[str], topn: int = 10, source="the vectors") -> dict[str, list]:
    """For each query word, its topn nearest words as [word, cosine] pairs, best first."""
    if topn <= 0:
        raise UsageError(f"--topn must be > 0 (got {topn})")
    _check(kv, words, source)
    return {w: [[v, float(c)] for v, c in kv.most_similar(w, topn=topn)] for w in words}


def analogy(kv: KeyedVectors, a: str, b: str, c: str, topn: int = 10, source="the vectors") -> list:
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
