"""Continued training against training from scratch and against gensim's, for docs/benchmarks-log.md section 8 (issue 21).

The corpus is cut into halves A and B (by lines: one article a line in the benchmark corpus). Four models:
- ours, continued: `w2v_nce.train(A)`, then `w2v_nce.train(B, init=that run)` (`w2v-nce train B --init RUN`);
- ours, from scratch on A then B (the two files as one corpus);
- gensim, continued: build_vocab(A) + train(A), then build_vocab(B, update=True) + train(B);
- gensim, from scratch on A then B.
Each is scored on the analogies, WS353 and SimLex, and on the questions and pairs that hold a word of B only (a
word that reaches min_count in B and not in A): what continued training is for. Same settings for both tools
(the bench's: dim 100, window 5, k 5, sample 1e-3, min_count 5, lr 0.025 sg / 0.05 cbow, the threads given).

Usage: python benchmarks/continued.py CORPUS [--model sg] [--loss neg] [--epochs 5] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import collections
import datetime
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import w2v_nce  # noqa: E402
from w2v_nce.tools import evaluate  # noqa: E402
from w2v_nce.tools.bench import machine  # noqa: E402
from w2v_nce.corpus.tokenize import open_binary  # noqa: E402


def halves(corpus: Path, workdir: Path) -> tuple[Path, Path]:
    lines = open_binary(corpus).read().splitlines(keepends=True)
    a, b = workdir / "A.txt", workdir / "B.txt"
    a.write_bytes(b"".join(lines[:len(lines) // 2]))
    b.write_bytes(b"".join(lines[len(lines) // 2:]))
    return a, b


def counts(path: Path) -> collections.Counter:
    c = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            c.update(line.split())
    return c


def b_only_sets(a: Path, b: Path, min_count: int, workdir: Path) -> tuple[Path, Path, int]:
    """The analogy questions and similarity pairs (WS353 and SimLex together) that hold a word of B only."""
    from gensim.test.utils import datapath
    ca, cb = counts(a), counts(b)
    only = {w.upper() for w, n in cb.items() if n >= min_count and ca[w] < min_count}
    questions, pairs = workdir / "b-only-questions.txt", workdir / "b-only-pairs.tsv"
    with open(datapath("questions-words.txt"), encoding="utf-8") as f, open(questions, "w") as out:
        section = None
        for line in f:
            if line.startswith(":"):
                section = line
            elif any(w.upper() in only for w in line.split()):
                out.write(section + line if section else line)
                section = None
    with open(pairs, "w") as out:
        for name in ("wordsim353.tsv", "simlex999.txt"):
            for line in open(datapath(name), encoding="utf-8"):
                parts = line.rstrip("\n").split("\t")
                if line.startswith("#") or len(parts) < 3:
                    continue
                if parts[0].upper() in only or parts[1].upper() in only:
                    try:
                        out.write(f"{parts[0]}\t{parts[1]}\t{float(parts[2])}\n")
                    except ValueError:  # simlex's header line
                        pass
    return questions, pairs, len(only)


def score(kv, questions: Path, pairs: Path) -> dict:
    row = evaluate.scores(kv)
    q = evaluate.analogies(kv, questions=questions, restrict_vocab=300000)
    s = evaluate.similarity(kv, str(pairs))
    row.update(b_analogy=q["accuracy"] if q["total"] else None, b_questions=q["total"], b_spearman=s["spearman"],
               b_pairs=s["total"] - s["oov"])
    return row


def ours(a: Path, b: Path, workdir: Path, opts: dict, log) -> dict:
    t = time.perf_counter()
    first = w2v_nce.train(a, workdir / "ours-A", **opts)
    cont = w2v_nce.train(b, workdir / "ours-AB", init=first, **opts)
    t_cont = time.perf_counter() - t
    t = time.perf_counter()
    scratch = w2v_nce.train([a, b], workdir / "ours-scratch", **opts)
    log(f"ours: continued {t_cont:.0f} s, from scratch {time.perf_counter() - t:.0f} s")
    return {"ours, A then --init on B": cont.vectors, "ours, A+B from scratch": scratch.vectors,
            "ours, A only": first.vectors}


def gensim(a: Path, b: Path, opts: dict, log) -> dict:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    def model():
        return Word2Vec(vector_size=opts["dim"], window=5, negative=5, hs=0, sample=1e-3, min_count=5,
                        workers=opts["threads"], sg=int(opts["model"] == "sg"), cbow_mean=1,
                        alpha=0.025 if opts["model"] == "sg" else 0.05, seed=1, epochs=opts["epochs"])
    t = time.perf_counter()
    m = model()
    m.build_vocab(LineSentence(str(a)))
    m.train(LineSentence(str(a)), total_examples=m.corpus_count, epochs=m.epochs)
    m.build_vocab(LineSentence(str(b)), update=True)
    m.train(LineSentence(str(b)), total_examples=m.corpus_count, epochs=m.epochs)
    t_cont = time.perf_counter() - t
    t = time.perf_counter()
    s = model()
    both = workdir_file = a.with_name("AB.txt")
    workdir_file.write_bytes(a.read_bytes() + b.read_bytes())
    s.build_vocab(LineSentence(str(both)))
    s.train(LineSentence(str(both)), total_examples=s.corpus_count, epochs=s.epochs)
    log(f"gensim: continued {t_cont:.0f} s, from scratch {time.perf_counter() - t:.0f} s")
    return {"gensim, A then update=True on B": m.wv, "gensim, A+B from scratch": s.wv}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--model", default="sg")
    ap.add_argument("--loss", default="neg")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    log = lambda *x: print(*x, flush=True)  # noqa: E731
    opts = dict(model=args.model, loss=args.loss, epochs=args.epochs, threads=args.threads, dim=100,
                progress=False)
    with tempfile.TemporaryDirectory(prefix="w2v-continued-") as tmp:
        work = Path(tmp)
        a, b = halves(args.corpus, work)
        questions, pairs, n_only = b_only_sets(a, b, 5, work)
        models = {**ours(a, b, work, opts, log), **gensim(a, b, opts, log)}
        rows = [(name, score(kv, questions, pairs)) for name, kv in models.items()]
    head = ("| model | analogy | WS353 | SimLex | B-only analogies (questions) | B-only pairs Spearman (pairs) |\n"
            "|---|---|---|---|---|---|")
    lines = [f"| {name} | {r['analogy']:.3f} | {r['ws353']:.3f} | {r['simlex']:.3f} | "
             f"{r['b_analogy'] if r['b_analogy'] is None else round(r['b_analogy'], 3)} ({r['b_questions']}) | "
             f"{r['b_spearman'] if r['b_spearman'] is None else round(r['b_spearman'], 3)} ({r['b_pairs']}) |"
             for name, r in rows]
    cmd = "python benchmarks/continued.py " + " ".join(sys.argv[1:])
    report = (f"Command: `{cmd}`  \nMachine: {machine()}, {args.threads} threads; "
              f"{datetime.date.today()}; {args.model}-{args.loss}, {args.epochs} epochs; {n_only:,} words of B only"
              f"\n\n{head}\n" + "\n".join(lines) + "\n")
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
