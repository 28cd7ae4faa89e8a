"""Vocabulary: word counts in one streaming pass, --min-count / --max-vocab, descending-count order.

The same pass encodes the corpus as int32 ids, written straight to disk, so the corpus is never held
as Python strings: a compiled loop splits each block of UTF-8 bytes (tokenize.iter_token_bytes), gives
each new word the next provisional id in a hash table (table.WordTable) and counts it; once the counts are known
the provisional ids are remapped to frequency order in a second, chunked pass over the on-disk array.

The table of distinct words may be bounded (build's `memory`, --vocab-memory). When it would grow past the bound
the count goes on exactly in partitions spilled to disk (spill.py) and the text is read a second time
(_two_passes): the same vocabulary, counts and ids, without ever holding every distinct word or a provisional id
per token.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import W2VError, storage_error
from ..files import atomic_path
from .spill import Spill, Tally, kept_words, spill_all
from .table import DROPPED, SEPARATOR, TableFull, WordTable  # (the ids' markers, imported from here by later stages)
from .tokenize import describe, iter_corpus_bytes

REMAP_CHUNK = 1 << 24  # provisional ids remapped at a time
EOS = "</s>"  # the word that ends every line with --eos (fastText's name; word2vec.c's for its sentence break)


@dataclass
class Vocab:
    """The words a run trains, by descending count (a word's id is its place), and their counts: vocab.tsv."""

    words: list[str]
    counts: np.ndarray  # (V,) int64, descending

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """Corpus tokens that are in the vocabulary (word2vec's train_words)."""
        return int(self.counts.sum())

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for w, c in zip(self.words, self.counts.tolist()):
                f.write(f"{w}\t{c}\n")

    @classmethod
    def loads(cls, text: str) -> "Vocab":
        """Parse vocab.tsv's text; ValueError names the first bad line."""
        words, counts = [], []
        for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].isdigit() or not parts[0]:
                raise ValueError(f"line {n}: expected 'word<TAB>count'")
            words.append(parts[0])
            counts.append(int(parts[1]))
        counts = np.asarray(counts, dtype=np.int64)
        if len(counts) == 0 or np.any(np.diff(counts) > 0):
            raise ValueError("expected words by descending count" if len(counts) else "no words")
        return cls(words, counts)


def select(words: list[str], counts: np.ndarray, min_count: int, max_vocab: int | None) -> np.ndarray:
    """Indices of the kept words, by descending count; ties keep first-seen order (stable sort)."""
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] >= min_count]
    if max_vocab is not None:
        order = order[:max_vocab]
    return order


def merge(prior: Vocab, words: list[str], counts: np.ndarray, min_count: int,
          max_vocab: int | None) -> tuple[Vocab, np.ndarray]:
    """Continued training's vocabulary (--init): every word of the earlier run's `prior`, with its count plus its
    count in the new text, and the new text's other words that reach min_count in it (at most max_vocab words in
    all, the earlier ones always kept), by descending count. Returns it and each new-text word's index in it (-1:
    dropped)."""
    at = {w: i for i, w in enumerate(prior.words)}
    place = np.full(len(words), -1, dtype=np.int64)  # each new-text word's index among the candidates
    merged = prior.counts.astype(np.int64).copy()
    fresh = []
    for i, w in enumerate(words):
        j = at.get(w)
        if j is not None:
            place[i] = j
            merged[j] += counts[i]
        elif counts[i] >= min_count:
            fresh.append(i)
    fresh = np.asarray(fresh, dtype=np.int64)
    fresh = fresh[np.argsort(-counts[fresh], kind="stable")]
    if max_vocab is not None:
        fresh = fresh[:max(0, max_vocab - len(prior))]
    place[fresh] = len(prior) + np.arange(len(fresh))
    cand_words = list(prior.words) + [words[i] for i in fresh]
    cand_counts = np.concatenate([merged, counts[fresh].astype(np.int64)])
    order = np.argsort(-cand_counts, kind="stable")  # candidate index, by descending count
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    final = np.where(place >= 0, rank[np.maximum(place, 0)], -1)
    return Vocab([cand_words[i] for i in order], cand_counts[order]), final


def build(corpus, ids_path: str | os.PathLike, min_count: int = 5, max_vocab: int | None = None,
          lowercase: bool = False, encoding_errors: str = "strict", progress=None,
          prior: Vocab | None = None, memory: int | None = None) -> tuple[Vocab, dict]:
    """Count and encode `corpus` (a path, or a list of paths read in order, a line break between files); write its
    int32 ids (SEPARATOR between lines) to `ids_path`. With `prior` (continued training), the vocabulary is
    merge()'s. `memory` (bytes; None: no bound) bounds the table of distinct words: where it would pass it, the
    counting goes on in partitions spilled to disk beside ids_path and the text is read a second time to encode
    it (_two_passes), with the same result.

    Returns the vocabulary and stats (tokens, kept tokens, distinct words, bytes, replaced bytes, seconds, passes,
    bytes spilled). `progress`, if given, is called with the bytes read so far (of the files as stored, compressed
    or not) after each block, from 0 again in a second pass.
    """
    paths = list(corpus) if isinstance(corpus, (list, tuple)) else [corpus]
    name = describe(paths)
    start = time.perf_counter()
    stats: dict = {"bytes": 0, "read": 0, "replaced_bytes": 0}
    ids_path = Path(ids_path)
    raw_path = ids_path.with_name(ids_path.name + ".raw")
    spill_dir = ids_path.with_name(ids_path.name + ".spill")
    shutil.rmtree(spill_dir, ignore_errors=True)  # a killed run's
    pieces = iter_corpus_bytes(paths, lowercase, encoding_errors, stats, progress)
    index = WordTable(limit=memory)
    try:
        n_raw, rest = _first_pass(pieces, index, raw_path, ids_path)
        if rest is None:
            vocab, remap, found = _one_pass(index, min_count, max_vocab, prior, name)
            del index  # (the table goes before the remap's chunks come)
            found["ids"] = _remap(raw_path, n_raw, remap, ids_path)
        else:  # the distinct words outgrew `memory`
            raw_path.unlink()
            spill = spill_all(index, rest, pieces, spill_dir)
            del index
            # the inputs are files (standard input and the API's sentences are copied into the run directory)
            reread = (lambda: iter_corpus_bytes(paths, lowercase, encoding_errors, {}, progress))
            vocab, found = _two_passes(spill, memory, reread, ids_path, min_count, max_vocab, prior, name)
    finally:
        raw_path.unlink(missing_ok=True)
        shutil.rmtree(spill_dir, ignore_errors=True)
    stats.update(found, seconds=time.perf_counter() - start)
    return vocab, stats


def with_line_ends(vocab: Vocab, ids_path: Path, stats: dict) -> tuple[Vocab, dict]:
    """fastText's end of line (--eos): every line of the encoded corpus at ids_path ends with EOS, a word of the
    vocabulary counted once a line (added to its count where the text or an earlier run has it), in its place by
    count, so that a line's last words have it in their windows, as fastText trains them (word2vec.c and gensim end
    a sentence there instead). Rewrites ids_path; returns the vocabulary and stats with the EOS tokens counted.
    (On Korean movie reviews, 7.6 tokens a line, its worth to a subword run was within the seeds' spread: log
    section 16.)"""
    n = stats["ids"]
    ids = np.memmap(ids_path, dtype=np.int32, mode="r", shape=(n,)) if n else np.zeros(0, np.int32)
    ends = []  # each line's last token: a word followed by a line break, or by the end
    for s in range(0, n, REMAP_CHUNK):
        block = ids[s:s + REMAP_CHUNK + 1]
        last = (block[:-1] != SEPARATOR) & (block[1:] == SEPARATOR)
        ends.append(s + np.flatnonzero(last[:REMAP_CHUNK]))
    if n and ids[-1] != SEPARATOR:
        ends.append(np.array([n - 1]))
    ends = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    words, counts = list(vocab.words), vocab.counts.copy()
    if EOS in words:
        counts[words.index(EOS)] += len(ends)
    else:
        words.append(EOS)
        counts = np.append(counts, len(ends))
    order = np.argsort(-counts, kind="stable")
    remap = np.empty(len(order) + 1, dtype=np.int32)  # old id -> new id; SEPARATOR (-1) indexes the last entry
    remap[order] = np.arange(len(order), dtype=np.int32)
    remap[SEPARATOR] = SEPARATOR
    eos = remap[words.index(EOS)]
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as f:
        for s in range(0, n, REMAP_CHUNK):
            block = remap[ids[s:s + REMAP_CHUNK]]
            a, z = np.searchsorted(ends, (s, s + REMAP_CHUNK))
            here = ends[a:z] - s
            f.write(np.insert(block, here + 1, eos).astype(np.int32).tobytes())
    del ids
    stats = {**stats, "ids": n + len(ends), "tokens": stats["tokens"] + len(ends),
             "kept_tokens": stats["kept_tokens"] + len(ends)}
    return Vocab([words[i] for i in order], counts[order]), stats


def _first_pass(pieces, index: WordTable, raw_path: Path, ids_path: Path) -> tuple[int, bytes | None]:
    """Count and encode into raw_path (provisional ids) until the pieces end, or until `index` would pass its
    memory limit: returns the ids written and None, or the rest of the piece it stopped in."""
    n_raw = 0
    with _writing(ids_path), open(raw_path, "wb") as raw:
        for piece in pieces:
            try:
                ids = index.encode(piece)
            except TableFull as full:
                return n_raw, piece[full.pos:]
            raw.write(ids.tobytes())
            n_raw += len(ids)
    return n_raw, None


def _one_pass(index: WordTable, min_count: int, max_vocab: int | None, prior: Vocab | None,
              name) -> tuple[Vocab, np.ndarray, dict]:
    """The vocabulary of a first pass that counted everything, the remap of its provisional ids, and stats."""
    counts = index.count[:index.n_words]  # (W,) by provisional id: first-seen order
    n_tokens = int(counts.sum())
    if n_tokens == 0:
        raise W2VError(f"corpus {name} has no tokens (it is empty or whitespace only); pass a text file")
    in_prior = WordTable.of(prior.words).ids_of(index) >= 0 if prior is not None else None
    vocab, kept, final = _choose(counts, index.words, min_count, max_vocab, prior, in_prior,
                                 f"{name} ({index.n_words} distinct words, {n_tokens} tokens)")
    # provisional id -> final id; a line break's SEPARATOR (-1) indexes the last entry
    remap = np.full(index.n_words + 1, DROPPED, dtype=np.int32)
    remap[kept] = final
    remap[SEPARATOR] = SEPARATOR
    return vocab, remap, dict(tokens=n_tokens, kept_tokens=int(counts[kept].sum()), distinct=index.n_words, passes=1,
                              spilled=0)


def _choose(counts: np.ndarray, words_of, min_count: int, max_vocab: int | None, prior: Vocab | None,
            in_prior: np.ndarray | None, corpus: str) -> tuple[Vocab, np.ndarray, np.ndarray]:
    """The vocabulary from the candidate words' counts (W,), in first-seen order: select's, or merge's with `prior`
    (in_prior: (W,) bool, which are its words). Returns it, the candidates kept and their ids in it (both (K,)).
    words_of(indices) gives those candidates' words: only the ones needed are made into strings. `corpus` names the
    text for the error."""
    if prior is None:
        kept = select(None, counts, min_count, max_vocab)
        if len(kept) == 0:
            raise W2VError(f"no word occurs {min_count} times or more in {corpus}; lower --min-count")
        return Vocab(words_of(kept), counts[kept]), kept, np.arange(len(kept), dtype=np.int32)
    # merge ignores the words of neither kind, so giving it only the others changes nothing
    cand = np.flatnonzero((counts >= min_count) | in_prior)
    vocab, final = merge(prior, words_of(cand), counts[cand], min_count, max_vocab)
    return vocab, cand[final >= 0], final[final >= 0].astype(np.int32)


def _remap(raw_path: Path, n_raw: int, remap: np.ndarray, ids_path: Path) -> int:
    """The provisional ids in raw_path, remapped to the vocabulary's (dropped words removed), into ids_path;
    returns how many ids it holds."""
    provisional = np.memmap(raw_path, dtype=np.int32, mode="r", shape=(n_raw,))
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as f:
        out = _IdsFile(f)
        for s in range(0, n_raw, REMAP_CHUNK):
            new = remap[provisional[s:s + REMAP_CHUNK]]
            out.write(new[new != DROPPED])  # dropped words vanish before windows are formed, as in word2vec.c
    del provisional
    return out.n


class _IdsFile:
    """corpus.ids as it is written. Line breaks at the end separate nothing (a final newline or not, the same ids):
    separators are held back until an id follows them."""

    def __init__(self, f):
        self.f, self.n, self.held = f, 0, 0

    def write(self, ids: np.ndarray) -> None:
        """ids: (n,) int32, vocabulary ids and SEPARATORs."""
        end = len(ids)
        while end and ids[end - 1] == SEPARATOR:
            end -= 1
        if end == 0:
            self.held += len(ids)
            return
        if self.held:
            self.f.write(np.full(self.held, SEPARATOR, dtype=np.int32).tobytes())
        self.f.write(ids[:end].tobytes())
        self.n += self.held + end
        self.held = len(ids) - end


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write of the provisional ids (a full disk) as a one-line error naming the ids file."""
    try:
        yield
    except OSError as e:
        raise storage_error("write", path, e) from None


def _two_passes(spill: Spill, limit: int, reread, ids_path: Path, min_count: int, max_vocab: int | None,
                prior: Vocab | None, name) -> tuple[Vocab, dict]:
    """The count of spill_all, finished exactly: each partition is counted alone within `limit` (all of a word's
    records are in one) and its words that reach min_count (or are prior's) kept; the vocabulary is chosen from those
    as from one pass, and the text, read again (reread()), is encoded by looking its words up in a table of the kept
    ones only."""
    prior_index = WordTable.of(prior.words) if prior is not None else None

    def wanted(tally: Tally) -> np.ndarray:
        keep = tally.count[:tally.n_words] >= min_count
        if prior_index is not None:
            keep |= prior_index.ids_of(tally) >= 0
        return keep

    cands, total = kept_words(spill, limit, wanted)
    order = np.argsort(cands.first[:cands.n_words])  # (C,) the candidates in first-seen order
    counts = cands.count[order]
    in_prior = (prior_index.ids_of(cands) >= 0)[order] if prior_index is not None else None
    vocab, kept, final = _choose(counts, lambda ids: cands.words(order[ids]), min_count, max_vocab, prior, in_prior,
                                 f"{name} ({total['distinct']} distinct words, {total['tokens']} tokens)")
    value = np.full(cands.n_words, DROPPED, dtype=np.int32)  # a candidate's id in the vocabulary
    value[order[kept]] = final
    n_ids = _encode_kept(reread(), cands, value, ids_path, total["tokens"], name)
    return vocab, dict(tokens=total["tokens"], kept_tokens=int(counts[kept].sum()), distinct=total["distinct"],
                       passes=2, spilled=spill.bytes, ids=n_ids)


def _encode_kept(pieces, table: WordTable, value: np.ndarray, ids_path: Path, tokens: int, name) -> int:
    """The second pass: the pieces' tokens looked up in `table` (no word is added) and written to ids_path as
    value[id], a word not in it (or of value DROPPED) dropped; returns the ids written. The first pass counted
    `tokens`: another number means that the text changed, and nothing is written."""
    n_tokens = 0
    with atomic_path(ids_path) as tmp, open(tmp, "wb") as f:
        ids = _IdsFile(f)
        for piece_ids, n in table.lookup(pieces, value, keep_dropped=False):
            n_tokens += n
            ids.write(piece_ids)
        if n_tokens != tokens:
            raise W2VError(f"corpus {name} changed while it was read twice ({tokens} tokens, then {n_tokens}); "
                           "train on text that does not change")
    return ids.n


def load_ids(path: str | os.PathLike) -> np.ndarray:
    """The encoded corpus, memory-mapped (read-only): a corpus larger than RAM streams from disk."""
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, dtype=np.int32)
    return np.memmap(path, dtype=np.int32, mode="r", shape=(size // 4,))
