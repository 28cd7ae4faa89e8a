"""`make bench-busy` (docs/benchmarks-log.md section 12, issue 37): ours and gensim on a machine that is doing something else.

Each round trains sg-neg and cbow-neg (or the heads of --loss; the presets' defaults, 1 epoch, 2 threads / 2 workers)
with our API and then gensim's Word2Vec on the first MB megabytes of the corpus, idle and then beside COMPETITORS busy
processes (`yes`, what a user's browser or another job is to a training run), in one process, one after the other. For
each run: the training words/s (corpus tokens, as both tools count them), and the cores the process held while it
trained (its CPU seconds over the wall seconds, from getrusage). The ratios that matter: ours / gensim under the same
competitor, and ours busy / ours idle.

    python benchmarks/busy.py CORPUS [--mb 20] [--rounds 2] [--competitors 1] [--models sg cbow] [--loss neg ...]
                              [--conditions idle busy] [--json]

(--conditions idle with many --rounds: ours and gensim alternated on an idle machine whose speed drifts, each round's
ratio taken side by side.)

PYTHONPATH=another/checkout runs another version of ours (its API: w2v_nce.train) against the same gensim.
"""

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence

import w2v_nce


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def slice_of(corpus: Path, mb: int, where: Path) -> Path:
    """The corpus's first MB megabytes, cut at a space, as a plain file (what both tools read)."""
    out = where / f"first{mb}m.txt"
    opener = gzip.open if corpus.suffix == ".gz" else open
    with opener(corpus, "rb") as f:
        data = f.read(mb * 1_000_000)
    out.write_bytes(data[:data.rfind(b" ")] + b"\n")
    return out


def ours(text: Path, model: str, out: Path, loss: str = "neg") -> dict:
    t, c = time.perf_counter(), cpu_seconds()
    run = w2v_nce.train(text, out, overwrite=True, model=model, loss=loss, epochs=1, threads=2, progress=False)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    s = run.summary
    # the training's own cores: the whole call's CPU less the vocabulary pass's (one thread), over training time
    return {"words_per_s": s.words_per_s, "cores": (cpu - s.vocab_seconds) / max(wall - s.vocab_seconds, 1e-9)}


def counterpart(loss: str) -> str:
    """The gensim head a head of ours is timed against: hs for hs, negative sampling for the rest (as `bench`)."""
    return "hs" if loss == "hs" else "neg"


def gensim(text: Path, model: str, loss: str = "neg") -> dict:
    m = Word2Vec(sg=int(model == "sg"), vector_size=100, window=5, negative=5 * (loss == "neg"),
                 hs=int(loss == "hs"), sample=1e-3, min_count=5, workers=2,
                 seed=1)
    m.build_vocab(LineSentence(str(text)))
    t, c = time.perf_counter(), cpu_seconds()
    m.train(LineSentence(str(text)), total_examples=m.corpus_count, epochs=1)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    return {"words_per_s": m.corpus_total_words / wall, "cores": cpu / wall}


def main(corpus: Path, mb: int, rounds: int, competitors: int, models: list[str], losses: tuple = ("neg",),
         conditions: tuple = ("idle", "busy")) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="w2v-busy-") as tmp:
        text = slice_of(corpus, mb, Path(tmp))
        # each model's kernels compiled (in a child process: jit_cache.compiled_apart) or loaded before the timed runs,
        # so that no round's cores count a compile, whose CPU seconds are the child's
        first = slice_of(corpus, 1, Path(tmp))
        for model in models:
            for loss in losses:
                ours(first, model, Path(tmp) / "run", loss)
        for condition in conditions:
            hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(competitors)] \
                if condition == "busy" else []
            try:
                time.sleep(1.0 if hogs else 0.0)
                for model in models:
                    for r in range(rounds):  # each of our heads, then gensim's heads they are timed against
                        mine = {loss: ours(text, model, Path(tmp) / "run", loss) for loss in losses}
                        theirs = {k: gensim(text, model, k) for k in dict.fromkeys(map(counterpart, losses))}
                        for loss, a in mine.items():
                            b = theirs[counterpart(loss)]
                            rows.append({"condition": condition, "model": model, "loss": loss, "round": r + 1,
                                         "ours": a["words_per_s"], "gensim": b["words_per_s"],
                                         "gensim_loss": counterpart(loss), "ratio": a["words_per_s"] / b["words_per_s"],
                                         "ours_cores": a["cores"], "gensim_cores": b["cores"]})
                            print(json.dumps(rows[-1]), flush=True)
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| condition | model | ours words/s (median) | gensim words/s (median) | ours / gensim (median of the "
             "rounds' ratios) | cores held: ours, gensim | ours, % of ours idle |", "|---|---|---|---|---|---|---|"]
    idle = {}
    for condition in ("idle", "busy"):
        for head in dict.fromkeys((r["model"], r["loss"]) for r in rows):
            mine = [r for r in rows if r["condition"] == condition and (r["model"], r["loss"]) == head]
            if not mine:
                continue
            o = statistics.median(r["ours"] for r in mine)
            idle.setdefault(head, o)
            g = statistics.median(r["gensim"] for r in mine)
            lines.append(f"| {condition} | {'-'.join(head)} | {o:,.0f} | {g:,.0f} "
                         f"| {statistics.median(r['ratio'] for r in mine):.2f}x | "
                         f"{statistics.median(r['ours_cores'] for r in mine):.2f}, "
                         f"{statistics.median(r['gensim_cores'] for r in mine):.2f} | {100 * o / idle[head]:.0f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--mb", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--competitors", type=int, default=1)
    p.add_argument("--models", nargs="+", default=["sg", "cbow"])
    p.add_argument("--loss", nargs="+", choices=["neg", "nce", "hs", "infonce", "sampled-softmax"], default=["neg"],
                   help="our heads (gensim's hs for hs, its negative sampling for the rest)")
    p.add_argument("--conditions", nargs="+", choices=["idle", "busy"], default=["idle", "busy"])
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    result = main(a.corpus, a.mb, a.rounds, a.competitors, a.models, tuple(a.loss), tuple(a.conditions))
    print(json.dumps(result) if a.json else table(result))
    print(f"(ours: {os.environ.get('PYTHONPATH') or 'this checkout'}; {a.mb} MB, 1 epoch, 2 threads, "
          f"{a.competitors} competitor(s) when busy)")
