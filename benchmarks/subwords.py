"""Subword vectors (issue 39): ours with and without subword n-grams against fastText and gensim's FastText, on the
Korean movie reviews scored on Park et al.'s (2018) Korean WS353 and analogies as a Korean user would, or (--english)
on English text scored as BENCHMARKS.md scores every run.

    python benchmarks/subwords.py [--corpus ../shared/corpora/nsmc-a.txt.gz] [--tools ours,ours-sub,fasttext,gensim-ft]
                                  [--subwords 1-4] [--jamo] [--epochs 5] [--threads 2] [--seed 1] [--json OUT]
    python benchmarks/subwords.py --english --corpus TEXT --subwords 3-6 ...

English (--english): analogy (gensim's questions-words, top 30,000 words), WS353 and SimLex-999 Spearman, by
w2v_nce.tools.evaluate.scores on each model's vectors of the words it has (the standard scores, seen words only).

Settings of every tool: skip-gram, dim 100, window 5, k 5, sample 1e-3, min-count 5, the epochs and threads given.
Scores: WS353-ko Spearman over the pairs every model has both words of in its vocabulary ("known") and over all 353
pairs ("all": a word with no vector scores 0 against anything); analogies 3CosAdd over the 100,000 most frequent
words, the three given words left out, of all 10,000 questions (a question whose given words have no vector is
wrong), and the five semantic and five syntactic sections apart. Words/s: the corpus's tokens times the epochs over
the training seconds (the vocabulary pass and n-gram tables included for fastText, which times them together).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SETTINGS = dict(dim=100, window=5, negatives=5, sample=1e-3, min_count=5)
TOP = 100_000


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(a, b, float(s)) for a, b, s in rows]


def read_questions(path: Path) -> list[tuple[str, list[str]]]:
    section, out = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            out.append((section, line.split()))
    return out


class Model:
    """A trained model's words by frequency, their unit vectors, and a vector for any word it can give one."""

    def __init__(self, name: str, words: list[str], vectors: np.ndarray, lookup, seconds: float, tokens: int,
                 epochs: int):
        self.name, self.words, self.lookup = name, words, lookup
        self.index = {w: i for i, w in enumerate(words)}
        top = vectors[:TOP].astype(np.float32)
        self.top = top / np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-12)
        self.seconds, self.words_per_s = seconds, tokens * epochs / seconds

    def vector(self, word: str):
        """The word's vector, or None where the model has none."""
        v = self.lookup(word)
        return None if v is None or not np.any(v) else np.asarray(v, dtype=np.float32)


OURS: dict = {}  # more of our options (--ours lr=0.05,noise_power=0.5)


def train_ours(corpus: Path, work: Path, subwords: str | None, epochs: int, threads: int, seed: int, tokens: int,
               jamo: bool = False):
    import w2v_nce
    run = w2v_nce.train(corpus, out=work / f"ours-{subwords or 'words'}{'-jamo' * jamo}", model="sg", loss="neg",
                        epochs=epochs, threads=threads, seed=seed, progress=False, subwords=subwords, jamo=jamo,
                        **{**SETTINGS, **OURS})
    kv = run.vectors
    lookup = (lambda w: kv.get_vector(w) if w else None) if subwords else (lambda w: kv[w] if w in kv.key_to_index
                                                                              else None)
    name = (f"w2v-nce sg-neg --subwords {subwords}" + " --jamo" * jamo) if subwords else "w2v-nce sg-neg"
    return Model(name, list(kv.index_to_key), kv.vectors, lookup, run.summary.seconds, tokens, epochs)


def train_fasttext(corpus_txt: Path, minn: int, maxn: int, epochs: int, threads: int, seed: int, tokens: int):
    """fastText's skip-gram with the seed given: its train_unsupervised takes none (its runs all had seed 0 until
    2026-12-06), but its C++ does, on the arguments object. Each thread draws from minstd_rand(seed + thread), and
    minstd_rand(0) is minstd_rand(1), so seed S is given as 1000 S: no two seeds' runs share a thread's stream."""
    import fasttext.FastText as ft_py
    import fasttext_pybind
    kwargs = dict(input=str(corpus_txt), model="skipgram", dim=SETTINGS["dim"], ws=SETTINGS["window"],
                  neg=SETTINGS["negatives"], t=SETTINGS["sample"], minCount=SETTINGS["min_count"], minn=minn,
                  maxn=maxn, epoch=epochs, thread=threads, verbose=0)
    t = time.perf_counter()
    args, manual = ft_py.read_args([], kwargs, list(kwargs), ft_py.unsupervised_default)
    args["seed"] = 1000 * seed
    manual.add("seed")
    a = ft_py._build_args(args, manual)
    m = ft_py._FastText(args=a)
    fasttext_pybind.train(m.f, a)  # what train_unsupervised does with its arguments
    m.set_args(m.f.getArgs())
    seconds = time.perf_counter() - t
    words = list(m.words)
    vectors = np.stack([m.get_word_vector(w) for w in words[:TOP]])
    return Model(f"fastText -minn {minn} -maxn {maxn}", words, vectors,
                 lambda w: m.get_word_vector(w) if w else None,  # zero (no vector) for an unseen word without n-grams
                 seconds, tokens, epochs)


def train_gensim_ft(corpus_txt: Path, minn: int, maxn: int, epochs: int, threads: int, seed: int, tokens: int):
    from gensim.models import FastText
    from gensim.models.word2vec import LineSentence
    t = time.perf_counter()
    m = FastText(LineSentence(str(corpus_txt)), sg=1, vector_size=SETTINGS["dim"], window=SETTINGS["window"],
                 negative=SETTINGS["negatives"], sample=SETTINGS["sample"], min_count=SETTINGS["min_count"],
                 min_n=minn, max_n=maxn, epochs=epochs, workers=threads, seed=seed)
    seconds = time.perf_counter() - t
    kv = m.wv
    return Model(f"gensim FastText {minn}-{maxn}", list(kv.index_to_key), kv.vectors,
                 lambda w: kv.get_vector(w) if w else None, seconds, tokens, epochs)


def spearman(model: Model, pairs) -> float:
    gold, got = [], []
    for a, b, s in pairs:
        va, vb = model.vector(a), model.vector(b)
        cos = 0.0 if va is None or vb is None else float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
        gold.append(s)
        got.append(cos)
    return float(stats.spearmanr(gold, got).correlation) if len(gold) > 1 else float("nan")


def analogies(model: Model, questions) -> dict:
    """3CosAdd over the model's TOP words, a, b and c left out: correct counts by section and in all."""
    right: dict[str, int] = {}
    total: dict[str, int] = {}
    for section, (a, b, c, d) in questions:
        total[section] = total.get(section, 0) + 1
        vs = [model.vector(w) for w in (a, b, c)]
        if any(v is None for v in vs):
            continue
        va, vb, vc = (v / np.linalg.norm(v) for v in vs)
        scores = model.top @ (vb - va + vc)
        for w in (a, b, c):
            if w in model.index and model.index[w] < len(scores):
                scores[model.index[w]] = -np.inf
        best = model.words[int(np.argmax(scores))]
        right[section] = right.get(section, 0) + (best == d)
    def part(prefix):
        return sum(v for k, v in right.items() if k.startswith(prefix)), sum(v for k, v in total.items()
                                                                             if k.startswith(prefix))
    return {"all": (sum(right.values()), sum(total.values())), "semantic": part("sem"), "syntactic": part("syn")}


def english(models: list[Model], tokens: int, out: Path | None) -> None:
    from w2v_nce.run.vectors import to_keyed_vectors
    from w2v_nce.tools.evaluate import scores
    rows = []
    print(f"{tokens:,} tokens")
    print("| model | analogy | WS353 | SimLex | words/s | s |")
    print("|---|---|---|---|---|---|")
    for m in models:
        kv = to_keyed_vectors(m.words[:TOP], np.arange(min(TOP, len(m.words)), 0, -1), m.top)
        row = {"model": m.name, **scores(kv), "words_per_s": m.words_per_s, "seconds": m.seconds}
        rows.append(row)
        print(f"| {m.name} | {row['analogy']:.3f} | {row['ws353']:.3f} | {row['simlex']:.3f} | {m.words_per_s:,.0f} | "
              f"{m.seconds:.1f} |", flush=True)
    if out:
        out.write_text(json.dumps(rows, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=SHARED / "nsmc-a.txt.gz")
    p.add_argument("--tools", default="ours,ours-sub,fasttext,gensim-ft")
    p.add_argument("--subwords", default="1-4")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ws", type=Path, default=SHARED / "ko-ws353.tsv")
    p.add_argument("--analogies", type=Path, default=SHARED / "ko-analogies.txt")
    p.add_argument("--json", type=Path)
    p.add_argument("--ours", default="", help="more of our options for our models: name=value,...")
    p.add_argument("--english", action="store_true", help="score as BENCHMARKS.md does (analogy, WS353, SimLex)")
    a = p.parse_args()
    minn, maxn = (int(x) for x in a.subwords.split("-"))
    for item in filter(None, a.ours.split(",")):
        key, value = item.split("=")
        for kind in (int, float, str):
            try:
                OURS[key] = kind(value)
                break
            except ValueError:
                pass
    pairs, questions = read_pairs(a.ws), read_questions(a.analogies)
    work = Path(tempfile.mkdtemp(prefix="w2v-korean-"))
    try:
        text = work / "corpus.txt"  # fastText and gensim read plain text
        with (gzip.open(a.corpus, "rb") if a.corpus.suffix == ".gz" else open(a.corpus, "rb")) as src, \
                open(text, "wb") as dst:
            shutil.copyfileobj(src, dst)
        with open(text, "rb") as f:
            tokens = sum(len(line.split()) for line in f)
        models = []
        for tool in a.tools.split(","):
            print(f"training {tool} ...", file=sys.stderr, flush=True)
            if tool == "ours":
                models.append(train_ours(text, work, None, a.epochs, a.threads, a.seed, tokens))
            elif tool == "ours-sub":
                models.append(train_ours(text, work, a.subwords, a.epochs, a.threads, a.seed, tokens))
            elif tool == "ours-jamo":
                models.append(train_ours(text, work, a.subwords, a.epochs, a.threads, a.seed, tokens, jamo=True))
            elif tool == "fasttext":
                models.append(train_fasttext(text, minn, maxn, a.epochs, a.threads, a.seed, tokens))
            elif tool == "gensim-ft":
                models.append(train_gensim_ft(text, minn, maxn, a.epochs, a.threads, a.seed, tokens))
            else:
                raise SystemExit(f"unknown tool {tool!r}")
        if a.english:
            return english(models, tokens, a.json)
        known = [(x, y, s) for x, y, s in pairs if all(x in m.index and y in m.index for m in models)]
        rows = []
        print(f"{tokens:,} tokens; WS353-ko pairs every model knows: {len(known)} of {len(pairs)}")
        print("| model | WS353-ko, known pairs | all pairs | analogies, of all | semantic | syntactic | words/s | s |")
        print("|---|---|---|---|---|---|---|---|")
        for m in models:
            an = analogies(m, questions)
            row = {"model": m.name, "ws_known": spearman(m, known), "ws_all": spearman(m, pairs),
                   "analogies": an, "words_per_s": m.words_per_s, "seconds": m.seconds, "known_pairs": len(known)}
            rows.append(row)
            (r, t), (rs, ts), (ry, ty) = an["all"], an["semantic"], an["syntactic"]
            print(f"| {m.name} | {row['ws_known']:.3f} | {row['ws_all']:.3f} | {100 * r / t:.1f}% ({r}) | "
                  f"{100 * rs / ts:.1f}% | {100 * ry / ty:.1f}% | {m.words_per_s:,.0f} | {m.seconds:.1f} |", flush=True)
        if a.json:
            a.json.write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
