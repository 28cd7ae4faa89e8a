"""Quality of a model trained across two machines, as docs/torchrun.md's command runs it: two network namespaces of
this machine (tests/hosts.py: their own addresses, hostnames and /etc/hosts; root needed), one process of one
thread each, the corpus and the run directory on host 0 only; scored as `w2v-nce bench` scores (analogy, WS353,
SimLex). Compare with one process's rows in docs/benchmarks-log.md section 7.

    python benchmarks/hosts_quality.py CORPUS.txt [--models cbow-neg,sg-neg] [--epochs 3] [--seed 1] [--out F]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hosts import Hosts, available  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--models", default="cbow-neg,sg-neg")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    why = available()
    if why:
        sys.exit(f"hosts_quality: {why}")
    rows = []
    for spec in a.models.split(","):
        with tempfile.TemporaryDirectory(prefix="w2v-hosts-") as tmp, Hosts(["host0", "host1"]) as hosts:
            tmp = Path(tmp)
            (tmp / "h0").mkdir()
            (tmp / "h0" / "corpus.txt").symlink_to(a.corpus.resolve())
            start = time.monotonic()
            procs = hosts.torchrun(tmp, ["train", "corpus.txt", "--config", spec, "--epochs", a.epochs, "--seed",
                                         a.seed, "--threads", 1, "--no-progress", "--out", "run"],
                                   env={"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
            errs = [p.communicate()[1] for p in procs]
            seconds = time.monotonic() - start
            if any(p.returncode for p in procs):
                sys.exit(f"hosts_quality: {spec} failed:\n{errs[0][-2000:]}\n{errs[1][-2000:]}")
            from w2v_nce import load
            from w2v_nce.tools.evaluate import scores
            row = {"model": spec, "epochs": a.epochs, "seed": a.seed, "seconds": round(seconds, 1),
                   **scores(load(tmp / "h0" / "run").vectors),
                   "summary": [line for line in errs[0].splitlines() if line.startswith("trained ")]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
