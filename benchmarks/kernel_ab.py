"""The compiled CPU step of this checkout against that of another revision, on the same examples from the same
weights (docs/benchmarks-log.md section 4): the kernel alone, without the example generation, alternated so that the
machine's drift falls on both.

    python benchmarks/kernel_ab.py TEXT --model sg --loss hs [--base HEAD] [--rounds 6] [--shared-noise N]

Trains one epoch of TEXT (a slice of the benchmark corpus) with this checkout, keeping its last 800 batches, then
times `train_step` of this checkout's step/cpu.py (A) and of the base revision's (B: its package taken with `git
archive`; step/cpu.py, or fused.py before the package had stages) over those
batches, each round from the trained weights, A and B in turn. Prints examples/s per round and the ratio of the
best and of the medians.

CAUTION (2026-12-05, Xeon, docs/benchmarks-log.md section 16): against a base whose kernel is this checkout's but for
lines that do not run (no subwords), it gave A / B = 1.40, and a change it measured at 1.23-1.40x changed nothing in
whole runs (`train --epochs 1`, alternated, 3 rounds). Check a ratio it gives against whole runs before believing it.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from w2v_nce import config
from w2v_nce.run import train as training
from w2v_nce.run.trainer import Trainer
from w2v_nce.step import cpu, plan


def base_module(rev: str):
    """The CPU step of revision `rev`: its w2v_nce package extracted as a package of another name (w2v_nce_base),
    so that its relative imports resolve within it."""
    root = Path(tempfile.mkdtemp())
    archive = subprocess.run(["git", "archive", rev, "w2v_nce"], check=True, capture_output=True,
                             cwd=Path(__file__).resolve().parents[1]).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "w2v_nce").rename(root / "w2v_nce_base")
    sys.path.insert(0, str(root))
    name = "w2v_nce_base.step.cpu" if (root / "w2v_nce_base" / "step" / "cpu.py").exists() else "w2v_nce_base.fused"
    module = importlib.import_module(name)
    from w2v_nce.model.heads import HSHead
    for other in [m for k, m in sys.modules.items() if k.startswith("w2v_nce_base")]:
        if hasattr(other, "HSHead"):  # the kernels tell hs by its class: this checkout's model is trained
            other.HSHead = HSHead
    return module


def record(text: Path, model: str, loss: str, keep: int = 800):
    """Train one epoch; return the model and its last `keep` batches as (inputs, targets, mask)."""
    batches, held = [], {}
    original, warm = plan.Plan.step, Trainer._warm

    def step(self, m, inputs, targets, lr, mask=None, generator=None, need_loss=True):
        held["model"] = m
        batches.append((inputs, targets, mask))
        del batches[:-keep]
        return original(self, m, inputs, targets, lr, mask, generator, need_loss)

    plan.Plan.step = step
    # by chunks, a batch at a time through Plan.step (one process on the CPU would train by pieces)
    Trainer._warm = lambda self, log, single: warm(self, log, False)
    try:
        cfg = config.make_config(None, model=model, loss=loss, epochs=1, threads=2)
        training.train(cfg, text, Path(tempfile.mkdtemp()) / "run")
    finally:
        plan.Plan.step, Trainer._warm = original, warm
    return held["model"], batches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("text", type=Path)
    ap.add_argument("--model", default="sg")
    ap.add_argument("--loss", default="neg")
    ap.add_argument("--base", default="HEAD")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--shared-noise", type=int, default=0)
    a = ap.parse_args()
    share = a.shared_noise or plan.SHARED_NOISE.get((a.model, a.loss), 1)
    model, batches = record(a.text, a.model, a.loss)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    n = sum(len(t) for _, t, _ in batches)
    kernels = {"A": cpu, "B": base_module(a.base)}
    cpu.set_threads(2)
    inputs, targets, mask = batches[0]
    for kernel in kernels.values():  # compiled before the clock runs
        kernel.train_step(model, inputs[:8], targets[:8], 0.0, None if mask is None else mask[:8], share=share)
    rates = {"A": [], "B": []}
    for r in range(a.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            model.load_state_dict(trained)
            generator = torch.Generator().manual_seed(1)
            start = time.perf_counter()
            for inputs, targets, mask in batches:  # a small lr: the weights stay near the trained ones
                kernels[name].train_step(model, inputs, targets, 0.001, mask, generator, share=share)
            rates[name].append(n / (time.perf_counter() - start))
            print(f"{name}: {rates[name][-1] / 1e6:.3f}M examples/s", flush=True)
    best = max(rates["A"]) / max(rates["B"])
    median = statistics.median(rates["A"]) / statistics.median(rates["B"])
    print(f"{a.model}-{a.loss}, share {share}, {n:,} examples: A / B = {best:.3f} (best), {median:.3f} (medians)")


if __name__ == "__main__":
    sys.exit(main())
