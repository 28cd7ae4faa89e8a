"""Queries from the command line: nearest neighbours (word2vec.c's `distance`, fastText's `nn`) and analogies
(word2vec.c's `word-analogy`, fastText's `analogies`).

Both are gensim's `KeyedVectors.most_similar`, so the answers are exactly what a gensim user gets: cosine
similarity to the query word (several words: to the sum of their unit vectors, as `distance` answers a line of
several words), or to the mean of the unit vectors of B and C minus A (3CosAdd), with the query words themselves
left out.

The vectors are read without importing gensim, which is most of a query's time: a run's vectors.kv through
vectorfiles' restricted unpickler, word2vec text and binary files (.gz/.bz2 too) by the readers below, which give
the words and float32 values gensim's `load_word2vec_format` gives. Anything else, or a file they find anything
unusual in (a duplicate word, a malformed line, a value that is not finite), goes to vectorfiles.load_vectors:
gensim, which reads it or says in one line what is wrong.
"""

from __future__ import annotations

from .. import jit_cache  # noqa: F401 (before any kernel: numba's cache keyed to every file a kernel reaches)

import bz2
import gzip
import mmap
import os
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from . import vectorfiles
from ..errors import UsageError, W2VError
from ..run import rundir, vectors as run_vectors

try:
    import numba
except ImportError:  # a dependency; without it, word2vec text files are read by gensim
    numba = None

SUM = " + "  # joins the words of a query of several words: its key in `similar`'s result


class Vectors:
    """The fields of a gensim KeyedVectors (of a run's vectors.kv, unpickled, or of a word2vec file), loaded without
    importing gensim, which is most of a query's time, and gensim 4's most_similar on them, step for step (unit
    vectors, their weighted mean, re-normalised in float64 as gensim's BLAS calls do, cosines, the top n by gensim's
    partial sort, the query words left out)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @classmethod
    def of(cls, words: list[str], vectors: np.ndarray) -> "Vectors":
        kv = cls()
        kv.__setstate__({"index_to_key": words, "key_to_index": {w: i for i, w in enumerate(words)},
                         "vectors": vectors, "vector_size": vectors.shape[1]})
        return kv

    def most_similar(self, positive=(), negative=(), topn: int = 10) -> list[tuple[str, float]]:
        positive, negative = ([k] if isinstance(k, str) else list(k) for k in (positive, negative))
        keys = positive + negative
        weights = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))  # float64, as gensim's
        norms = np.linalg.norm(self.vectors, axis=1)  # (V,) float32
        mean = np.zeros(self.vectors.shape[1], self.vectors.dtype)
        total = 0
        for w, key in zip(weights, keys):
            i = self.key_to_index[key]
            mean += w * (self.vectors[i] / norms[i])
            total += abs(w)
        mean = mean / total  # a numpy float64 as gensim's: (D,) float64 under numpy 2's promotion, float32 under 1's
        m64 = mean.astype(np.float64)  # gensim's unitvec: BLAS dnrm2 and dscal, in float64
        length = float(np.sqrt(np.dot(m64, m64)))
        mean = ((m64 * (1.0 / length)).astype(mean.dtype) if length > 0 else mean).astype(np.float32)
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
    """The vectors of a run directory or a vectors file: a plain KeyedVectors pickle (.kv) or a word2vec text or
    binary file read without gensim, into Vectors; anything else (other gensim classes, a file the quick readers
    find anything unusual in) through vectorfiles.load_vectors, gensim's loaders and checks. A pickle is read only
    through vectorfiles' restricted unpickler, unless trust_pickle."""
    if Path(source).is_dir() and (Path(source) / rundir.CONFIG).is_file() \
            and rundir.read_config(Path(source))[0].subwords is not None:
        # a subword run: gensim's FastTextKeyedVectors, which answer words never seen from their n-grams
        return run_vectors.of_run(rundir.load_run(Path(source)))
    path = Path(source) / "vectors.kv" if Path(source).is_dir() else Path(source)
    try:
        kv = _quick(path, trust_pickle)
    except W2VError:  # an unsafe file: refused, not read again
        raise
    except Exception:  # anything unexpected: the full loader says what is wrong, or loads it
        kv = None
    return kv if kv is not None else vectorfiles.load_vectors(source, trust_pickle)


def _quick(path: Path, trust_pickle: bool):
    """The vectors of the file `path` without gensim, or None for the full loader. Its format is decided from the
    content by vectorfiles.sniff, as the full loader decides it."""
    f = _open(path)
    if f is None:
        return None
    with f:
        try:
            fmt = vectorfiles.sniff(path, f)
        except W2VError:  # not a vectors file: the full loader says so
            return None
        if fmt == "kv":
            return None if trust_pickle else _read_kv(path)
        if isinstance(f, (gzip.GzipFile, bz2.BZ2File)):
            f.seek(0)
            return _read_word2vec(f.read(), fmt == "word2vec-binary")
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # no copy of a large file in memory
        try:
            return _read_word2vec(data, fmt == "word2vec-binary")
        finally:
            try:
                data.close()
            except BufferError:  # an array still reads it: closed when it goes
                pass


def _open(path: Path):
    """The regular file `path` open for reading, decompressed as gensim opens it (smart_open: by the suffix, in any
    case), or None where gensim's opener might read something else (a name smart_open takes for a URL or expands,
    a compression other than .gz and .bz2, anything but a regular file)."""
    name = str(path)
    url = "://" in name if os.name == "nt" else bool(urlsplit(name).scheme)  # smart_open's _sniff_scheme
    if url or name.startswith("~") or not path.is_file():
        return None
    suffix = Path(name.lower()).suffix
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix in (".zst", ".xz", ".lz4"):
        return None
    return open(path, "rb")


def _read_kv(path: Path):
    """A KeyedVectors pickle into Vectors, opened as vectorfiles.read_kv opens it; None unless it is a plain,
    well-formed one."""
    with vectorfiles.open_kv(path) as f:
        kv = vectorfiles.unpickle(path, f, stand_in=Vectors)
    if (isinstance(kv, Vectors) and vectorfiles.well_formed(kv)
            and getattr(kv, "vector_size", None) == kv.vectors.shape[1] and np.isfinite(kv.vectors).all()):
        return kv
    return None


def _read_word2vec(data, binary: bool):
    """A word2vec file's content (bytes or an mmap) into Vectors, as gensim's load_word2vec_format reads it (the
    header `COUNT DIM`, COUNT records, anything after them ignored; words decoded as strict UTF-8; text numbers
    parsed as np.float32(token), binary ones as float32 in the machine's order), or None for gensim to read it:
    a file it would reject or read with a rule not repeated here (duplicate words, broadcast rows), or values that
    are not finite, which the full loader refuses with its message."""
    end = data.find(b"\n")
    if end < 0:
        return None
    count, dim = (int(x) for x in data[:end].decode("utf-8").split())  # gensim's header rule
    if count <= 0 or dim <= 0:
        return None
    read = _read_binary if binary else _read_text
    words, vectors = read(data, end + 1, count, dim) or (None, None)
    if words is None or not np.isfinite(vectors).all():
        return None
    kv = Vectors.of(words, vectors)
    return kv if len(kv.key_to_index) == count else None  # a duplicate word: gensim keeps the first, says so


def _read_binary(data, start: int, count: int, dim: int):
    """gensim's _word2vec_read_binary: each record the bytes up to a space (the word; newlines before it dropped
    after decoding), then dim float32. Its chunks change nothing where every word is new."""
    size, n = 4 * dim, len(data)
    if count * (size + 1) > n - start:
        return None  # truncated: gensim says so
    find, pos, raw, offsets = data.find, start, [], []
    for _ in range(count):
        space = find(b" ", pos)
        if space < 0 or n - space - 1 < size:
            return None
        raw.append(data[pos:space])
        offsets.append(space + 1)
        pos = space + 1 + size
    words = [w.decode("utf-8").lstrip("\n") for w in raw]
    rows = bytearray().join([data[o:o + size] for o in offsets])
    return words, np.frombuffer(rows, dtype=np.float32).reshape(count, dim)


def _read_text(data, start: int, count: int, dim: int):
    """gensim's _word2vec_read_text: COUNT lines, each stripped of the whitespace that ends it and split at single
    spaces into the word and dim numbers, each np.float32(token). The compiled pass reads the lines whose numbers
    all have the usual form (decimal, at most 2**53 in their digits, powers of ten up to 22: one exact
    multiplication or division, as Python's float() rounds them, then float32); the others are read here as gensim
    reads them."""
    if _parse_text is None or count * 2 * dim > len(data) - start:
        return None  # without numba gensim reads it; too short for COUNT lines: truncated
    buf = np.frombuffer(data, dtype=np.uint8)
    vectors = np.empty((count, dim), np.float32)
    bounds = np.empty((count, 3), np.int64)  # line start, word end, line end (its newline)
    odd = np.empty(count, np.bool_)
    lines = _parse_text(buf, start, count, dim, vectors, bounds, odd)
    del buf
    if lines != count:
        return None  # fewer lines than COUNT: gensim says the file is truncated
    words = [data[a:w].decode("utf-8") for a, w in bounds[:, :2].tolist()]
    for i in np.flatnonzero(odd).tolist():
        a, _, e = bounds[i].tolist()
        parts = data[a:e].rstrip().decode("utf-8").split(" ")
        if len(parts) != dim + 1:
            return None  # gensim fails, or broadcasts a single number
        with np.errstate(over="ignore"):  # past float32: inf, refused below (gensim warns, reading it again)
            words[i], vectors[i] = parts[0], [np.float32(x) for x in parts[1:]]
    return words, vectors


_POW10 = np.array([float(10 ** k) for k in range(23)])  # exact: 10**22 < 2**53 * 2**22
NEWLINE, SPACE, PLUS, MINUS, DOT, ZERO, NINE, SMALL_E, CAPITAL_E = b"\n +-.09eE"  # the bytes a vector line holds
MOST_DIGITS = 100000000000000000  # 10**17: a mantissa this large takes no more digits (the number is not read)


def _digits_at(buf, p, n, m, digits, ok):
    """The decimal digits at buf[p:] appended to the mantissa m: (where they end, m, digits so far, ok: m kept
    exact)."""
    while p < n and ZERO <= buf[p] <= NINE:
        if m >= MOST_DIGITS:
            ok = False
        else:
            m = m * 10 + (buf[p] - ZERO)
        digits += 1
        p += 1
    return p, m, digits, ok


def _number_at(buf, p, n):
    """The decimal number at buf[p:] (a sign, digits, a fraction, an exponent): (where it ends, its value, ok). ok is
    False where it is not a number of that form, or one that a float64 product of two exact values does not give
    to the bit (then the line is read by Python's float)."""
    neg = False
    if p < n and (buf[p] == MINUS or buf[p] == PLUS):
        neg = buf[p] == MINUS
        p += 1
    p, m, digits, ok = _digit_run(buf, p, n, 0, 0, True)  # m: the digits as an integer
    k = 0  # m's power of ten
    if p < n and buf[p] == DOT:
        p, m, more, ok = _digit_run(buf, p + 1, n, m, 0, ok)
        k, digits = -more, digits + more
    if digits == 0:
        ok = False
    if p < n and (buf[p] == SMALL_E or buf[p] == CAPITAL_E):
        p += 1
        eneg = False
        if p < n and (buf[p] == MINUS or buf[p] == PLUS):
            eneg = buf[p] == MINUS
            p += 1
        x, edigits = 0, 0
        while p < n and ZERO <= buf[p] <= NINE:
            if x < 100000:
                x = x * 10 + (buf[p] - ZERO)
            edigits += 1
            p += 1
        if edigits == 0:
            ok = False
        k += -x if eneg else x
    if not ok or m > 9007199254740992 or (m != 0 and not -22 <= k <= 22):  # 2**53; 10**k exact
        return p, 0.0, False
    v = 0.0 if m == 0 else m * _POW10[k] if k >= 0 else m / _POW10[-k]
    return p, -v if neg else v, True


def _vector_at(buf, p, n, row, dim):
    """The dim numbers at buf[p:], separated by single spaces, into row: (where the line's reading stopped, ok: it
    held exactly those numbers, then only whitespace)."""
    j = 0
    while True:
        p, v, ok = _number(buf, p, n)
        if not ok:
            return p, False
        row[j] = np.float32(v)
        j += 1
        if p >= n or buf[p] == NEWLINE:
            break
        if buf[p] == SPACE and j < dim:
            p += 1
            continue
        while p < n and (buf[p] == SPACE or 9 <= buf[p] <= 13) and buf[p] != NEWLINE:  # whitespace that ends it
            p += 1
        if p < n and buf[p] != NEWLINE:
            return p, False
        break
    return p, j == dim


def _parse_text_loop(buf, pos, count, dim, out, bounds, odd):
    """Lines of `word v1 ... vdim`, from buf[pos:], into out; a line it does not read (not that shape, a number
    of another form) is marked odd, with its start and end in bounds. Returns the lines found (< count: the end
    of the data came first)."""
    n = buf.size
    for i in range(count):
        if pos >= n:
            return i
        a = w = pos
        while w < n and buf[w] != SPACE and buf[w] != NEWLINE:
            w += 1
        p = w
        ok = w < n and buf[w] == SPACE
        if ok:
            p, ok = _vector(buf, w + 1, n, out[i], dim)
        while p < n and buf[p] != NEWLINE:
            p += 1
        bounds[i, 0] = a
        bounds[i, 1] = w if ok else a
        bounds[i, 2] = p
        odd[i] = not ok
        pos = p + 1
    return count


def _compiled(fn, **options):
    """fn compiled by numba and kept in its cache; where there is no place for the cache, compiled at each run;
    without numba None (gensim reads text files then)."""
    try:
        return numba.njit(cache=True, nogil=True, **options)(fn)
    except Exception:
        try:
            return numba.njit(nogil=True, **options)(fn)
        except Exception:
            return None


_digit_run = _compiled(_digits_at, inline="always")
_number = _compiled(_number_at, inline="always")
_vector = _compiled(_vector_at, inline="always")
_parse_text = _compiled(_parse_text_loop)


def unseen(kv, words: list[str]) -> list[str]:
    """The words that subword vectors (FastTextKeyedVectors) answer from their n-grams alone: not in the
    vocabulary. Empty for vectors without subwords, which answer no such word."""
    return [w for w in words if w not in kv.key_to_index] if getattr(kv, "bucket", 0) else []


def unseen_note(kv, words: list[str]) -> str:
    """A line naming the unseen words a query's answer rests on, or ''."""
    missing = unseen(kv, words)
    return (f"not in the training text, a vector from its character n-grams: {', '.join(map(repr, missing))}"
            if missing else "")


def _check(kv, words: list[str], source) -> None:
    subwords = bool(getattr(kv, "bucket", 0))
    for w in words:
        if w and subwords:
            continue  # any word has n-grams
        if w not in kv.key_to_index:
            close = [v for v in (w.lower(), w.capitalize(), w.upper()) if v != w and v in kv.key_to_index]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise W2VError(f"{w!r} is not in the vocabulary of {source}{hint}; query a word it has")


def _queries(words: list[str], each: bool) -> list[list[str]]:
    return [[w] for w in words] if each else [list(words)]


def similar(kv, words: list[str], topn: int = 10, source="the vectors", each: bool = False) -> dict[str, list]:
    """The topn nearest words to the sum of the words' unit vectors ([word, cosine] pairs, best first), as word2vec.c's
    distance answers a line of several words (gensim's most_similar(positive=words)), under the key of the words
    joined by ' + '; each=True: each word's own, under the word."""
    if topn <= 0:
        raise UsageError(f"--topn must be > 0 (got {topn})")
    _check(kv, words, source)
    return {SUM.join(q): [[v, float(c)] for v, c in kv.most_similar(positive=q, topn=topn)]
            for q in _queries(words, each)}


def analogy(kv, a: str, b: str, c: str, topn: int = 10, source="the vectors") -> list:
    """A is to B as C is to ?: the topn answers as [word, score] pairs, best first."""
    if topn <= 0:
        raise UsageError(f"--topn must be > 0 (got {topn})")
    _check(kv, [a, b, c], source)
    return [[v, float(s)] for v, s in kv.most_similar(positive=[b, c], negative=[a], topn=topn)]


def format_similar(result: dict[str, list], words: list[str] | None = None, each: bool = True) -> str:
    """similar's result as text, a block per query headed by its words (`nearest to 'a' + 'b' (cosine):` for a
    sum); words and each: as given to similar (without words, each key is one word)."""
    names = {SUM.join(q): SUM.join(repr(w) for w in q) for q in _queries(words or list(result), each)}
    blocks = []
    for key, pairs in result.items():
        width = max([len(v) for v, _ in pairs] + [4])
        blocks.append("\n".join([f"nearest to {names.get(key, repr(key))} (cosine):"]
                                + [f"  {v:<{width}}  {c:.4f}" for v, c in pairs]))
    return "\n\n".join(blocks)


def format_analogy(a: str, b: str, c: str, pairs: list) -> str:
    width = max([len(v) for v, _ in pairs] + [4])
    return "\n".join([f"{a} is to {b} as {c} is to:"] + [f"  {v:<{width}}  {s:.4f}" for v, s in pairs])
