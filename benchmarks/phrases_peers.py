"""benchmarks/phrases.sh's Python side (issue 24, docs/benchmarks-log.md section 10): gensim's Phrases and Word2Vec at the
settings of word2vec.c's pipeline, and the token-for-token comparison of two phrased texts.

    python benchmarks/phrases_peers.py compare REF OURS            # tokens equal, and each difference in context
    python benchmarks/phrases_peers.py gensim-phrases IN OUT --threshold T [--min-count 5]
    python benchmarks/phrases_peers.py ours IN OUT                  # our pass timed in this process
    python benchmarks/phrases_peers.py within-lines IN OUT [--threshold T] [--passes N]   # ours, counting as gensim
    python benchmarks/phrases_peers.py gensim-train IN KV [--threads 2] [--model sg]
    python benchmarks/phrases_peers.py table JSON...                # eval analogies --json files as Markdown rows
"""

from __future__ import annotations

import argparse
import difflib
import json
import time
from pathlib import Path


def lines(path: str):
    """A text's lines as token lists, whole (gensim's LineSentence cuts lines at 10,000 tokens; Phrases need not)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield line.split()


def compare(ref: str, ours: str, show: int = 30) -> None:
    """Tokens of `ours` equal to `ref`'s, line by line (a line's tokens aligned by difflib), and each difference
    with three tokens of context on either side."""
    a, b = list(lines(ref)), list(lines(ours))
    equal = shown = 0
    for n, (x, y) in enumerate(zip(a, b), 1):
        if x == y:
            equal += len(x)
            continue
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=x, b=y, autojunk=False).get_opcodes():
            if op == "equal":
                equal += i2 - i1
            elif shown < show:
                shown += 1
                print(f"line {n}, token {i1 + 1}: ... {' '.join(x[max(0, i1 - 3):i1])} [{' '.join(x[i1:i2])}] "
                      f"{' '.join(x[i2:i2 + 3])} ... (ref) / [{' '.join(y[j1:j2])}] (ours)")
    n_ref, n_ours = sum(map(len, a)), sum(map(len, b))
    print(json.dumps({"lines": [len(a), len(b)], "tokens": [n_ref, n_ours], "equal": equal,
                      "fraction_equal": equal / max(n_ref, n_ours)}))


def gensim_phrases(src: str, out: str, threshold: float, min_count: int) -> None:
    """gensim's Phrases (its default scorer) learnt on `src`, frozen, applied to it and written to `out`."""
    from gensim.models.phrases import FrozenPhrases, Phrases

    start = time.perf_counter()
    model = Phrases(lines(src), min_count=min_count, threshold=threshold)
    learnt = time.perf_counter()
    frozen = FrozenPhrases(model)
    del model
    tokens = 0
    with open(out, "w", encoding="utf-8") as f:
        for sentence in lines(src):
            tokens += len(sentence)
            f.write(" ".join(frozen[sentence]) + "\n")
    seconds = time.perf_counter() - start
    print(json.dumps({"tool": "gensim", "tokens": tokens, "seconds": seconds, "learn_seconds": learnt - start,
                      "words_per_s": tokens / seconds}))


def ours(src: str, out: str) -> None:
    """One pass of ours at the defaults, timed in this process once numba is up (its first call, about 0.4 s, is
    timed apart, as gensim's import is)."""
    import tempfile
    from w2v_nce.corpus import phrases

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "warm.txt").write_text("a b\n")
        phrases.build(Path(tmp) / "warm.txt", Path(tmp) / "out.txt")
    warm = time.perf_counter()
    done = phrases.build(src, out)
    seconds = time.perf_counter() - warm
    print(json.dumps({"tool": "ours", "tokens": done["tokens"], "seconds": seconds, "numba_start": warm - start,
                      "words_per_s": done["tokens"] / seconds}))


def within_lines(src: str, out: str, threshold, passes: int) -> None:
    """Ours with word2vec scoring but pairs counted within lines (gensim's counts), not across line breaks as
    word2phrase counts them: what replicating word2phrase's counts changes."""
    from w2v_nce.corpus import phrases

    count = phrases._count
    phrases._count = lambda paths, ids, cross_lines, *rest: count(paths, ids, False, *rest)
    print(json.dumps(phrases.build(src, out, threshold=threshold, passes=passes)))


def gensim_train(src: str, kv: str, threads: int, model: str) -> None:
    """gensim's Word2Vec at word2vec.c's settings (and ours): 5 epochs, dim 100, window 5, 5 negatives, sample
    1e-3, min_count 5, lr 0.025 (sg) / 0.05 (cbow)."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    start = time.perf_counter()
    w2v = Word2Vec(LineSentence(src), sg=int(model == "sg"), hs=0, negative=5, vector_size=100, window=5,
                   sample=1e-3, min_count=5, workers=threads, epochs=5, alpha=0.025 if model == "sg" else 0.05,
                   seed=1)
    w2v.wv.save(kv)
    print(json.dumps({"tool": "gensim Word2Vec", "seconds": time.perf_counter() - start,
                      "vocabulary": len(w2v.wv)}))


def table(paths: list[str]) -> None:
    """One Markdown row per `eval analogies --json` file: accuracy, correct / answered, coverage."""
    for path in paths:
        r = json.loads(Path(path).read_text())
        asked = r["total"] + r["skipped"]
        print(f"| {Path(path).stem} | {r['accuracy']:.3f} | {r['correct']:,} / {r['total']:,} | "
              f"{r['total'] / asked:.1%} of {asked:,} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("compare")
    c.add_argument("ref")
    c.add_argument("ours")
    g = sub.add_parser("gensim-phrases")
    w = sub.add_parser("within-lines")
    o = sub.add_parser("ours")
    for q in (g, w, o):
        q.add_argument("src")
        q.add_argument("out")
    for q in (g, w):
        q.add_argument("--threshold", type=float, default=100.0)
    g.add_argument("--min-count", type=int, default=5)
    w.add_argument("--passes", type=int, default=1)
    t = sub.add_parser("gensim-train")
    t.add_argument("src")
    t.add_argument("kv")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--model", default="sg")
    sub.add_parser("table").add_argument("json", nargs="+")
    a = p.parse_args()
    if a.what == "compare":
        compare(a.ref, a.ours)
    elif a.what == "gensim-phrases":
        gensim_phrases(a.src, a.out, a.threshold, a.min_count)
    elif a.what == "ours":
        ours(a.src, a.out)
    elif a.what == "within-lines":
        within_lines(a.src, a.out, a.threshold, a.passes)
    elif a.what == "gensim-train":
        gensim_train(a.src, a.kv, a.threads, a.model)
    else:
        table(a.json)


if __name__ == "__main__":
    main()
