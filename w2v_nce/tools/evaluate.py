"""Evaluate: score word analogies and word-pair similarity (vectorfiles.py reads the vectors).

The numbers match gensim's `evaluate_word_analogies` (3CosAdd) and `evaluate_word_pairs` exactly,
so results compare with published gensim figures. Gensim solves analogies one question at a time in
a Python loop; here all questions are scored in batches with one matrix product, and gensim's own
code is called only for the rare question whose top candidates are too close for float32 rounding
to order them the same way gensim does.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from gensim import matutils
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from scipy import stats

from ..errors import UsageError, W2VError

METHODS = ("3cosadd", "3cosmul")
PAIR_SETS = {"ws353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
WINDOW = 5  # gensim looks at the top 5 candidates (after dropping the question words' own rows)
TIE_EPS = 1e-5  # float32 cosines differ from gensim's by ~2e-7; closer candidates go to gensim itself
COSMUL_EPS = 1e-6  # gensim's most_similar_cosmul guard against division by zero


def scores(kv: KeyedVectors) -> dict:
    """The three scores BENCHMARKS.md and --eval-epochs report: analogy accuracy (top 30,000 words), and the
    Spearman correlation on WordSim353 and on SimLex-999."""
    return {"analogy": analogies(kv, restrict_vocab=30000)["accuracy"],
            "ws353": similarity(kv, "ws353")["spearman"], "simlex": similarity(kv, "simlex999")["spearman"]}


# ---------------------------------------------------------------------------------------------
# Analogies


def _read_questions(path: Path) -> list[tuple[str, list[list[str]]]]:
    """[(section name, [[a, b, c, expected], ...]), ...] from a questions-words.txt style file."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise W2VError(f"cannot read questions file {path}: {e.strerror}; pass an existing analogy file") from e
    sections: list[tuple[str, list[list[str]]]] = []
    with f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise W2VError(f"{path}, line {n}: not valid UTF-8; save the file as UTF-8") from None
            if line.startswith(": "):
                sections.append((line.lstrip(": ").strip(), []))  # gensim's name parsing, kept verbatim
                continue
            words = line.split()
            if not words:
                continue  # blank lines: gensim skips them too
            if len(words) != 4:
                raise W2VError(f"{path}, line {n}: expected ': section name' or 4 words, got {len(words)} "
                               f"words; fix or delete the line")
            if not sections:
                raise W2VError(f"{path}, line {n}: question before the first ': section name' line; add one")
            sections[-1][1].append(words)
    return sections


def _ok_vocab(kv: KeyedVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Gensim's lookup table: (upper-cased) word -> row of its most frequent spelling, top words only."""
    if restrict_vocab < 1:
        raise UsageError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
    ok: dict[str, int] = {}
    for i, w in enumerate(kv.index_to_key[:restrict_vocab]):
        ok.setdefault(w.upper() if case_insensitive else w, i)
    return ok


def _pick(window, group, ignore) -> tuple[int, int]:
    """Gensim's choice, as (position in window, group): the first candidate that is not a question
    word in any spelling. If all are, gensim keeps the last one, so it counts as right when the answer
    is that question word. (-1, -1): no candidate at all."""
    for pos, i in enumerate(window):
        if group[i] not in ignore:
            return pos, int(group[i])
    return (len(window) - 1, int(group[window[-1]])) if window else (-1, -1)


def _close_call(scores: list[float], pos: int, all_ignored: bool) -> bool:
    """Could float32 rounding make gensim rank differently where it decides the verdict? Only the
    order of the picked candidate and the next one matters (and, when every candidate in the window
    is a question word, also the order of the last two)."""
    gaps = [pos - 1, pos] if all_ignored else [pos]
    return any(0 <= k < len(scores) - 1 and scores[k] - scores[k + 1] < TIE_EPS for k in gaps)


def _gensim_window(kv, ok, fold, a, b, c, restrict_vocab) -> list[int]:
    """Gensim's top candidates for one question, computed by gensim's own code (the tie-breaker)."""
    words = [fold(kv.index_to_key[i]) for i in (a, b, c)]  # keys of `ok`
    original, kv.key_to_index = kv.key_to_index, ok  # what evaluate_word_analogies does
    try:
        with np.errstate(all="ignore"):
            sims = kv.most_similar(positive=words[1:], negative=words[:1], topn=WINDOW,
                                   restrict_vocab=restrict_vocab)
    finally:
        kv.key_to_index = original
    return [kv.key_to_index[w] for w, _ in sims]


def _predict(kv, ok, fold, quads: np.ndarray, restrict_vocab: int, method: str) -> np.ndarray:
    """Predicted group (row of the answer's most frequent spelling) for each (a, b, c, expected) row."""
    vectors = kv.vectors[:restrict_vocab]
    R = len(vectors)
    group = np.array([ok[fold(w)] for w in kv.index_to_key[:R]])
    norms = np.linalg.norm(vectors, axis=1)  # float32, as gensim's fill_norms
    bad = ~(np.isfinite(norms) & (norms > 0))  # gensim's cosines are NaN there: never a candidate
    unit = np.zeros_like(vectors)
    np.divide(vectors, norms[:, None], out=unit, where=~bad[:, None])
    import torch  # here: a query (similar, analogy) never needs it, and it takes a second to import

    U = torch.from_numpy(unit)  # (R, D)
    bad_t = torch.from_numpy(bad)
    q = torch.from_numpy(quads[:, :3].astype(np.int64))  # (N, 3)
    out = np.empty(len(quads), dtype=np.int64)
    batch = max(1, min(1024, (1 << 25) // max(R, 1)))  # keeps each (B, R) score matrix near 128 MB
    for start in range(0, len(quads), batch):
        qa, qb, qc = q[start:start + batch].T
        if method == "3cosadd":
            mean = U[qb] + U[qc] - U[qa]  # (B, D)
            mean = mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-30)
            scores = mean @ U.T  # (B, R)
        else:
            sims = (U[torch.cat([qa, qb, qc])] @ U.T).add_(1).mul_(0.5)  # (3B, R), cosines shifted to [0, 1]
            sa, sb, sc = sims.split(len(qa))
            scores = sb.mul_(sc).div_(sa.add_(COSMUL_EPS))  # in place: these matrices are large
        if bad.any():
            scores[:, bad_t] = -math.inf
        scores.scatter_(1, q[start:start + batch], -math.inf)  # gensim drops the question words' rows
        top, idx = scores.topk(min(WINDOW + 1, R), dim=1)  # (B, 6), best first
        for row, (cands, vals) in enumerate(zip(idx.tolist(), top.tolist())):
            a, b, c, _ = (int(x) for x in quads[start + row])
            ignore = {a, b, c}  # groups of the question words
            ranked = [(i, v) for i, v in zip(cands, vals) if v > -math.inf]  # without the masked rows
            window = [i for i, _ in ranked[:WINDOW]]
            pos, pred = _pick(window, group, ignore)
            all_ignored = all(group[i] in ignore for i in window)
            if method == "3cosadd" and (
                _close_call([v for _, v in ranked], pos, all_ignored) or bad[[a, b, c]].any()
            ):
                _, pred = _pick(_gensim_window(kv, ok, fold, a, b, c, restrict_vocab), group, ignore)
            out[start + row] = pred
    return out


def analogies(
    kv: KeyedVectors,
    questions: Path | None = None,
    restrict_vocab: int = 30000,
    method: str = "3cosadd",
    case_insensitive: bool = True,
) -> dict:
    """Analogy accuracy, per section and in total; questions with a word outside the top
    `restrict_vocab` words are skipped (counted in 'skipped', not in 'total')."""
    if method not in METHODS:
        raise UsageError(f"unknown analogy method {method!r}; choose one of {', '.join(METHODS)}")
    path = Path(questions) if questions is not None else Path(datapath("questions-words.txt"))
    sections = _read_questions(path)
    ok = _ok_vocab(kv, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else str

    rows, skipped, unseen = [], 0, []  # rows: (a, b, c, expected, section) as rows of ok's groups
    for s, (_, quads) in enumerate(sections):
        for quad in quads:
            ids = [ok.get(fold(w)) for w in quad]
            if None in ids:
                skipped += 1
                unseen.append(quad)
            else:
                rows.append(ids + [s])
    rows = np.array(rows, dtype=np.int64).reshape(-1, 5)
    predicted = _predict(kv, ok, fold, rows[:, :4], restrict_vocab, method) if len(rows) else np.empty(0, np.int64)
    hit = predicted == rows[:, 3]
    correct = np.bincount(rows[:, 4], weights=hit, minlength=len(sections)).astype(int)
    total = np.bincount(rows[:, 4], minlength=len(sections))

    per_section = [
        {"name": name, "correct": int(c), "total": int(t), "accuracy": float(c / t) if t else 0.0}
        for (name, _), c, t in zip(sections, correct, total)
    ]
    n_correct, n_total = int(hit.sum()), len(rows)
    return {
        "accuracy": n_correct / n_total if n_total else 0.0,
        "correct": n_correct,
        "total": n_total,
        "skipped": skipped,
        "sections": per_section,
        "method": method,
        "questions": str(path),
        "restrict_vocab": restrict_vocab,
        **({"with_unseen": _unseen_analogies(kv, unseen, restrict_vocab, n_correct, n_total)} if _subwords(kv) else {}),
    }


def _subwords(kv) -> bool:
    """Whether kv gives words never seen a vector (FastTextKeyedVectors: a subword run's)."""
    return bool(getattr(kv, "bucket", 0))


def _unseen_analogies(kv, quads, restrict_vocab: int, correct: int, total: int) -> dict:
    """A subword run's questions with a word outside the top restrict_vocab words too: a, b and c from their n-grams
    where unseen (3CosAdd), the answer among the top words (a, b and c left out); an expected word outside them is
    wrong. Counted with the questions scored in vocabulary."""
    top = kv.vectors[:restrict_vocab]
    unit = top / np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-12)
    index = {w: i for i, w in enumerate(kv.index_to_key[:restrict_vocab])}
    for a, b, c, d in quads:
        va, vb, vc = (matutils.unitvec(kv.get_vector(w)) for w in (a, b, c))
        scores = unit @ (vb - va + vc)
        for w in (a, b, c):
            if w in index:
                scores[index[w]] = -np.inf
        correct += int(kv.index_to_key[int(np.argmax(scores))] == d)
    total += len(quads)
    return {"correct": correct, "total": total, "accuracy": correct / total if total else 0.0}


# ---------------------------------------------------------------------------------------------
# Word-pair similarity


def _read_pairs(path: Path) -> list[tuple[str, str, float]]:
    """(word1, word2, score) rows of a tab-separated pairs file; '#' lines are comments."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:  # text mode, like gensim
            for n, line in enumerate(f, 1):
                if line.startswith("#") or not line.strip():
                    continue
                parts = line.split("\t")  # words are not stripped: gensim does not strip them either
                if len(parts) != 3:
                    raise W2VError(f"{path}, line {n}: expected 'word1<TAB>word2<TAB>score', got {len(parts)} "
                                   f"tab-separated fields; fix or delete the line")
                try:
                    rows.append((parts[0], parts[1], float(parts[2])))
                except ValueError:
                    raise W2VError(f"{path}, line {n}: score {parts[2].strip()!r} is not a number; "
                                   f"fix or delete the line") from None
    except UnicodeDecodeError:
        raise W2VError(f"{path} is not valid UTF-8; save the file as UTF-8") from None
    except OSError as e:
        raise W2VError(
            f"cannot read pairs file {path}: {e.strerror}; pass ws353, simlex999 or an existing file") from e
    return rows


def similarity(
    kv: KeyedVectors, pairs: str = "ws353", restrict_vocab: int = 300000, case_insensitive: bool = True
) -> dict:
    """Spearman and Pearson correlation of cosine similarity with human scores, over the pairs whose
    words are both in the top `restrict_vocab` words. Correlations are None when fewer than 2 pairs
    are in vocabulary (or the model gives every pair the same score)."""
    path = Path(datapath(PAIR_SETS[pairs])) if pairs in PAIR_SETS else Path(pairs)
    rows = _read_pairs(path)
    ok = _ok_vocab(kv, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else str
    gold, model = [], []
    for a, b, score in rows:
        ia, ib = ok.get(fold(a)), ok.get(fold(b))
        if ia is not None and ib is not None:
            gold.append(score)
            # kv.similarity's exact float32 arithmetic, so the correlations equal gensim's
            model.append(np.dot(matutils.unitvec(kv.vectors[ia]), matutils.unitvec(kv.vectors[ib])))
    spearman = pearson = None
    if len(gold) >= 2:
        spearman = float(stats.spearmanr(gold, model).statistic)
        pearson = float(stats.pearsonr(gold, model).statistic)
    oov = len(rows) - len(gold)
    both = {}
    if _subwords(kv):  # every pair: a word never seen from its n-grams
        every = [np.dot(matutils.unitvec(kv.get_vector(a)), matutils.unitvec(kv.get_vector(b))) for a, b, _ in rows]
        gold_all = [s for _, _, s in rows]
        both = {"all_pairs": {"spearman": float(stats.spearmanr(gold_all, every).statistic) if len(rows) >= 2 else None,
                              "pairs": len(rows), "unseen_pairs": oov}}
    return {
        "spearman": spearman if spearman is None or math.isfinite(spearman) else None,
        "pearson": pearson if pearson is None or math.isfinite(pearson) else None,
        "oov_ratio": oov / len(rows) if rows else 0.0,
        "pairs": str(path),
        "total": len(rows),
        "oov": oov,
        **both,
    }


# ---------------------------------------------------------------------------------------------
# Reports


def format_analogies(result: dict) -> str:
    width = max([len(s["name"]) for s in result["sections"]] + [len("total")])
    lines = [f"analogies ({result['method']}, top {result['restrict_vocab']} words) from {result['questions']}"]
    for s in result["sections"] + [{"name": "total", **{k: result[k] for k in ("correct", "total", "accuracy")}}]:
        acc = f"{100 * s['accuracy']:5.1f}%" if s["total"] else "     -"
        lines.append(f"  {s['name']:<{width}}  {s['correct']:>6}/{s['total']:<6} {acc}")
    lines.append(f"skipped {result['skipped']} questions with out-of-vocabulary words")
    if "with_unseen" in result:
        u = result["with_unseen"]
        lines.append(f"with them (unseen words from their n-grams): {u['correct']}/{u['total']} "
                     f"{100 * u['accuracy']:.1f}%")
    return "\n".join(lines)


def format_similarity(result: dict) -> str:
    def num(x):
        return "   n/a" if x is None else f"{x:.4f}"

    return "\n".join([
        f"word-pair similarity on {result['pairs']}",
        f"  spearman  {num(result['spearman'])}",
        f"  pearson   {num(result['pearson'])}",
        f"  pairs     {result['total'] - result['oov']}/{result['total']} in vocabulary",
        f"skipped {result['oov']} pairs with out-of-vocabulary words ({100 * result['oov_ratio']:.1f}%)",
    ] + ([f"all {result['all_pairs']['pairs']} pairs (unseen words from their n-grams): spearman "
          f"{num(result['all_pairs']['spearman'])}"] if "all_pairs" in result else []))
