"""The fused CPU step of this checkout against that of another revision, on the same examples from the same weights
(BENCHMARKS.md section 4): the kernel alone, without the example generation, alternated so that the machine's drift
falls on both.

    python benchmarks/kernel_ab.py TEXT --model sg --loss hs [--base HEAD] [--rounds 6] [--shared-noise N]

Trains one epoch of TEXT (a slice of the benchmark corpus) with this checkout, keeping its last 800 batches, then
times `train_step` of this checkout's fused.py (A) and of the base revision's (B, taken with `git show`) over those
batches, each round from the trained weights, A and B in turn. Prints examples/s per round and the ratio of the
best and of the medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from w2v_nce import backends, config, fused, training


def base_module(rev: str):
    """fused.py of revision `rev` as a module of its own (its relative imports made absolute)."""
    text = subprocess.run(["git", "show", f"{rev}:w2v_nce/fused.py"], check=True, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent).stdout
    path = Path(tempfile.mkdtemp()) / "fused_base.py"
    path.write_text(text.replace("from .heads import", "from w2v_nce.heads import"))
    spec = importlib.util.spec_from_file_location("fused_base", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(text: Path, model: str, loss: str, keep: int = 800):
    """Train one epoch; return the model and its last `keep` batches as (inputs, targets, mask)."""
    batches, held = [], {}
    original = backends.Plan.step

    def step(self, m, inputs, targets, lr, mask=None, generator=None, need_loss=True):
        held["model"] = m
        batches.append((inputs, targets, mask))
        del batches[:-keep]
        return original(self, m, inputs, targets, lr, mask, generator, need_loss)

    backends.Plan.step = step
    try:
        cfg = config.make_config(None, model=model, loss=loss, epochs=1, threads=2)
        training.train(cfg, text, Path(tempfile.mkdtemp()) / "run")
    finally:
        backends.Plan.step = original
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
    share = a.shared_noise or backends.SHARED_NOISE.get((a.model, a.loss), 1)
    model, batches = record(a.text, a.model, a.loss)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    n = sum(len(t) for _, t, _ in batches)
    kernels = {"A": fused, "B": base_module(a.base)}
    fused.set_threads(2)
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
