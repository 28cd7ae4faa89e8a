"""Synchronisation over a slow link between two machines of our own (tests/hosts.py; root needed), measured against
the cost model of docs/benchmarks-log.md section 7: netem on the veth link (`--delay`, `--rate`; a token bucket at
`--rate` and no delay where the kernel has no netem), 2 hosts x 1 process
x 1 thread, one epoch of TEXT, `--sync full` and `--sync rows` at each `--sync-words`; per synchronisation the bytes
rank 0 sent and the seconds in the collectives (metrics.jsonl's sync lines), beside the model's ring all-reduce time
for the full model, B / b for two processes (B = 4·(2·V·D + V) bytes, b the link's rate).

    python benchmarks/slow_link.py TEXT [--delay 1ms] [--rate 1gbit] [--sync-words 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hosts import Hosts, available  # noqa: E402

RATES = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def bits_per_s(rate: str) -> float:
    for unit, scale in RATES.items():
        if rate.endswith(unit):
            return float(rate[:-len(unit)]) * scale
    return float(rate)


def one(hosts: Hosts, tmp: Path, text: Path, sync: str, words: int) -> dict:
    (tmp / "h0").mkdir(exist_ok=True)
    if not (tmp / "h0" / "corpus.txt").exists():
        (tmp / "h0" / "corpus.txt").symlink_to(text.resolve())
    out = f"run-{sync}-{words}"
    procs = hosts.torchrun(tmp, ["train", "corpus.txt", "--epochs", 1, "--threads", 1, "--no-progress", "--sync", sync,
                                 "--sync-words", words, "--out", out],
                           env={"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    errs = [p.communicate()[1] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(f"slow_link: {sync} {words} failed:\n{errs[0][-1500:]}\n{errs[1][-1500:]}")
    run = tmp / "h0" / out
    syncs = [e for e in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if e["event"] == "sync"]
    vocab = sum(1 for _ in open(run / "vocab.tsv", encoding="utf-8"))
    return {"sync": sync, "sync_words": words, "syncs": len(syncs), "vocab": vocab,
            "mb_per_sync": statistics.median(e["bytes"] for e in syncs) / 1e6,
            "s_per_sync": statistics.median(e["sync_s"] for e in syncs),
            "wait_s": statistics.median(e["wait_s"] for e in syncs),
            "summary": [line for line in errs[0].splitlines() if line.startswith("trained ")]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("text", type=Path)
    ap.add_argument("--delay", default="1ms")
    ap.add_argument("--rate", default="1gbit")
    ap.add_argument("--sync-words", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=100)
    a = ap.parse_args()
    why = available()
    if why:
        sys.exit(f"slow_link: {why}")
    with tempfile.TemporaryDirectory(prefix="w2v-slow-") as tmp, Hosts(["host0", "host1"]) as hosts:
        link = hosts.shape(a.delay, a.rate)
        for words in map(int, a.sync_words.split(",")):
            for sync in ("full", "rows"):
                row = one(hosts, Path(tmp), a.text, sync, words)
                model_bytes = 4 * (2 * row["vocab"] * a.dim + row["vocab"])
                row["model_s"] = round(model_bytes * 8 / bits_per_s(a.rate), 4)  # W = 2: each sends B once
                row.update(link=link, model_mb=round(model_bytes / 1e6, 2))
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
