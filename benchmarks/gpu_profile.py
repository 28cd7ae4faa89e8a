"""Where a CUDA epoch's time goes, for docs/benchmarks-log.md section 6 (`make gpu-check` runs it on a lent GPU).

For each model (sg-neg, cbow-neg by default) on the corpus:
- gen: drawing every chunk's examples on the device (sub-sampling, windows, pairs / contexts);
- kernel: the fused CUDA kernel's own time, from CUDA events around each launch;
- step: the host's time of the launches' loop (tables, buffers, the seed, the launch, the biases) to the last
  synchronisation, so step - kernel is what Python and the small ops between launches cost;
then words/s over gen + step, the same measure as `train`'s. Beside it: the speed against the number of warps
in flight (cuda_step.WORKERS) and the launch size, on the first chunks, and the PyTorch step on one chunk.
Prints a table and writes every figure as JSON (--out). Speed only: the scores are the bench's.

Usage: python benchmarks/gpu_profile.py CORPUS [--out profile.json] [--budget 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2v_nce.step.plan import Plan, largest_summed_batch, make_plan  # noqa: E402
from w2v_nce.config import make_config  # noqa: E402
from w2v_nce.run.opening import make_run_dir  # noqa: E402
from w2v_nce.run.trainer import Trainer  # noqa: E402


DEVICE = "cuda"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


class KernelClock:
    """CUDA events around every cuda_step.launch: the kernel's own time, summed once the device is idle."""

    def __init__(self):
        from w2v_nce.step import cuda as cuda_step
        self.mod, self.original, self.events = cuda_step, cuda_step.launch, []

    def __enter__(self):
        def timed(*args, **kw):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            self.original(*args, **kw)
            b.record()
            self.events.append((a, b))
        self.mod.launch = timed
        return self

    def __exit__(self, *exc):
        self.mod.launch = self.original

    def seconds(self) -> float:
        sync()
        return sum(a.elapsed_time(b) for a, b in self.events) / 1e3


def draw(tr: Trainer, chunks: range) -> tuple[list, float]:
    t = time.perf_counter()
    out = [tr.loop.examples(c) for c in chunks]
    sync()
    return out, time.perf_counter() - t


def run_steps(tr: Trainer, plan: Plan, examples: list) -> tuple[int, float, float]:
    """(examples, host seconds, kernel seconds) of training on the drawn examples at the run's first rate."""
    n_done = 0
    with KernelClock() if DEVICE == "cuda" else contextlib.nullcontext() as clock:
        sync()
        t = time.perf_counter()
        for inputs, targets, mask in examples:
            for s in range(0, len(targets), plan.batch_size):
                sl = slice(s, s + plan.batch_size)
                plan.step(tr.model, inputs[sl], targets[sl], tr.lr, None if mask is None else mask[sl], tr.gen,
                          need_loss=True)
                n_done += len(targets[sl])
        sync()
        host = time.perf_counter() - t
    return n_done, host, clock.seconds() if clock is not None and clock.events else 0.0


def generation(corpus_dir: Path, vocab, model: str, loss: str, epoch_words: int, scale: float, log) -> dict:
    """An epoch's example generation, whole and by stage (synchronised after each)."""
    from w2v_nce.corpus import examples as batches
    out = {}
    cfg = make_config(None, model=model, loss=loss, device=DEVICE, epochs=1)
    tr = Trainer(cfg, corpus_dir, vocab, make_plan(cfg), single=False)
    _, seconds = draw(tr, range(len(tr.starts)))
    out["epoch"] = {"s": seconds, "words_per_s": epoch_words * scale / seconds, "ids_on_device": tr.loop.ids_on_device
                    is not None}
    log(f"  generation: {seconds:.3f} s an epoch ({epoch_words * scale / seconds / 1e6:.0f}M words/s; the corpus "
        f"{'on the device' if tr.loop.ids_on_device is not None else 'read from the host'})")
    stages = dict.fromkeys(("read", "subsample", "lines", "windows", "examples"), 0.0)
    for c in range(len(tr.starts)):
        t = time.perf_counter()
        s = tr.starts[c]
        if tr.loop.ids_on_device is not None:
            ids = tr.loop.ids_on_device[s:s + cfg.chunk_tokens].long()
        else:
            ids = torch.from_numpy(np_int64(tr.ids[s:s + cfg.chunk_tokens])).to(tr.device)
        sync(); stages["read"] += time.perf_counter() - t; t = time.perf_counter()  # noqa: E702
        ids = batches.subsample(ids, tr.keep, tr.gen)
        sync(); stages["subsample"] += time.perf_counter() - t; t = time.perf_counter()  # noqa: E702
        w, lines = batches.split_lines(ids)
        sync(); stages["lines"] += time.perf_counter() - t; t = time.perf_counter()  # noqa: E702
        eff = batches.draw_windows(len(w), cfg.window, tr.device, tr.gen)
        sync(); stages["windows"] += time.perf_counter() - t; t = time.perf_counter()  # noqa: E702
        if model == "sg":
            batches.skipgram_pairs(w, lines, eff, cfg.window)
        else:
            batches.cbow_examples(w, lines, eff, cfg.window)
        sync(); stages["examples"] += time.perf_counter() - t  # noqa: E702
    out["stages"] = stages
    log("  generation by stage: " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))
    return out


def np_int64(a):
    import numpy as np
    return np.asarray(a, dtype=np.int64)


def profile_model(corpus_dir: Path, vocab, info: dict, model: str, loss: str, budget: float, log) -> dict:
    cfg = make_config(None, model=model, loss=loss, device=DEVICE, epochs=1)
    plan = make_plan(cfg)
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tr = Trainer(cfg, corpus_dir, vocab, plan, single=False)
    scale = info["tokens"] / max(tr.epoch_words, 1)  # corpus tokens per trained word, as train's words/s counts
    words = [w * scale for w in tr.chunk_words]
    # one epoch, or as many chunks as the budget allows (measured on the first two)
    first = min(2, len(tr.starts))
    ex, gen_s = draw(tr, range(first))
    n, host, kern = run_steps(tr, plan, ex)
    per_chunk = (gen_s + host) / first
    chunks = min(len(tr.starts), max(first, int(budget / max(per_chunk, 1e-3))))
    ex2, gen2 = draw(tr, range(first, chunks))
    n2, host2, kern2 = run_steps(tr, plan, ex2)
    del ex, ex2
    gen_t, host_t, kern_t, n_t = gen_s + gen2, host + host2, kern + kern2, n + n2
    row = {"model": model, "loss": loss, "kernel": plan.kernel, "batch_size": plan.batch_size, "chunks": chunks,
           "of_chunks": len(tr.starts), "examples": n_t, "gen_s": gen_t, "step_s": host_t, "kernel_s": kern_t,
           "words_per_s": sum(words[:chunks]) / (gen_t + host_t),
           "examples_per_s_kernel": n_t / kern_t if kern_t else None,
           "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None,
           "note": plan.note}
    in_kernel = f", {n_t / kern_t / 1e6:.1f}M examples/s in the kernel" if kern_t else ""
    log(f"{model}-{loss} {plan.kernel}: {chunks} chunks, {n_t:,} examples; gen {gen_t:.2f} s, step {host_t:.2f} s "
        f"(kernel {kern_t:.2f} s); {row['words_per_s'] / 1e6:.2f}M words/s{in_kernel}")

    row["generation"] = generation(corpus_dir, vocab, model, loss, tr.epoch_words, scale, log)
    # speed against the workers, the warps a block and the registers a thread, on the first two chunks (the model
    # keeps training: speed only)
    if DEVICE != "cuda":
        return row
    from w2v_nce.step import cuda as cuda_step
    ex, _ = draw(tr, range(first))
    words2 = sum(words[:first])
    sweep = []
    base = cuda_step.WORKERS, cuda_step.WARPS, cuda_step.MAX_REGISTERS
    for workers, warps, regs in ((4096, 1, None), (16384, 1, None), (4096, 1, 64), (16384, 1, 64), (16384, 1, 56),
                                 (16384, 1, 48), (16384, 2, 48), (32768, 1, 64)):
        cuda_step.WORKERS, cuda_step.WARPS, cuda_step.MAX_REGISTERS = workers, warps, regs
        run_steps(tr, plan, ex[:1])  # compiles a new block size or register limit before it is timed
        n, host, kern = run_steps(tr, plan, ex)
        sweep.append({"workers": workers, "warps": warps, "max_registers": regs, "step_s": host, "kernel_s": kern,
                      "words_per_s_step": words2 / host})
        log(f"  workers {workers:6d} warps/block {warps} max registers {regs}: step {host:.3f} s kernel {kern:.3f} "
            f"s -> {words2 / host / 1e6:.1f}M words/s without example generation")
    cuda_step.WORKERS, cuda_step.WARPS, cuda_step.MAX_REGISTERS = base
    row["sweep"] = sweep

    # the PyTorch step on one chunk, at its default batch
    tplan = Plan(plan.device, "torch", largest_summed_batch(loss) if loss == "hs" else 4096)
    n, host, _ = run_steps(tr, tplan, ex[:1])
    row["torch_step"] = {"examples": n, "step_s": host, "words_per_s_step": words[0] / host}
    log(f"  torch step, batch {tplan.batch_size}: {n:,} examples in {host:.2f} s -> "
        f"{words[0] / host / 1e6:.2f}M words/s without example generation")

    # torch's profiler over one chunk of the fused step: the device's kernels by total time
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            one, _ = draw(tr, range(1))
            run_steps(tr, plan, one)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=48)
        row["profiler"] = table
        log(table)
    except Exception as e:  # the profiler is a lead, not a requirement
        row["profiler"] = f"failed: {type(e).__name__}: {e}"
        log(row["profiler"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of training per model, at most one epoch")
    ap.add_argument("--models", default="sg-neg,cbow-neg")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the timing loop, without the GPU parts")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory(prefix="w2v-gpu-profile-") as tmp:
        run_dir = Path(tmp) / "run"
        t = time.perf_counter()
        vocab, info = make_run_dir(make_config(None, device=DEVICE), args.corpus, run_dir)
        log(f"vocabulary: {len(vocab):,} words, {info['tokens']:,} tokens in {time.perf_counter() - t:.1f} s")
        for spec in args.models.split(","):
            model, loss = spec.split("-", 1)
            rows.append(profile_model(run_dir, vocab, info, model, loss, args.budget, log))
            if args.out:
                name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
                args.out.write_text(json.dumps({"device": name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
