"""`w2v-nce bench`: our models and gensim's Word2Vec on the same text, settings and threads, in one run.

The corpus is split once: the last `heldout_fraction` of it (cut at whitespace) is held out for the
log Z / NLL columns and both tools train on the rest. Training words/s = training-corpus tokens x epochs
/ training seconds; vocabulary building (gensim's build_vocab, our tokenise + count + encode) is
reported apart. Quality: analogy accuracy on questions-words.txt (restrict_vocab 30000), Spearman on
WordSim353 and SimLex-999, all through the same evaluate functions.

On CUDA a row also reports the peak GPU memory and, for skip-gram with neg / nce, the fraction of the memory
bandwidth bound reached: a fused update reads and writes (k + 2) rows of d float32 per (centre, context) pair,
8·d·(k+2) bytes, against the device-to-device copy bandwidth measured in the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import evaluate, heldout, vectorfiles
from ..config import NOISE_HEADS, Config, make_config
from ..model.heads import HSHead, OutputHead
from ..files import atomic_path
from ..corpus.tokenize import open_binary

COPY_BLOCK = 1 << 24


def split_corpus(corpus: Path, workdir: Path, heldout_fraction: float) -> tuple[Path, Path]:
    """Decompress `corpus` into train.txt and heldout.txt (the last fraction, cut at whitespace)."""
    full = workdir / "full.txt"
    with open_binary(corpus) as src, open(full, "wb") as dst:
        shutil.copyfileobj(src, dst, COPY_BLOCK)
    size = full.stat().st_size
    cut = int(size * (1 - heldout_fraction))
    with open(full, "rb") as f:
        f.seek(cut)
        tail = f.read(1 << 16)
    spaces = [tail.find(c) for c in (b" ", b"\n") if tail.find(c) >= 0]
    cut += min(spaces) if spaces else 0
    train, held = workdir / "train.txt", workdir / "heldout.txt"
    with open(full, "rb") as f, open(train, "wb") as t, open(held, "wb") as h:
        left = cut
        while left > 0:
            block = f.read(min(COPY_BLOCK, left))
            t.write(block)
            left -= len(block)
        shutil.copyfileobj(f, h, COPY_BLOCK)
    full.unlink()
    return train, held


def held_stats(words, input_vecs, head, model, cfg: Config, held: Path, max_contexts: int) -> dict:
    ids = heldout.encode(held, words, max_contexts * 4, cfg.lowercase)
    inputs, targets, mask = heldout.examples(ids, model, cfg.window, max_contexts)
    st = heldout.log_z_stats(torch.as_tensor(input_vecs), head, model, inputs, targets, mask)
    return {"mean_log_z": st["mean_log_z"], "heldout_nll": st["nll"]}


def gensim_head(model, loss: str):
    """gensim's output layer as one of our heads, for the exact held-out columns: syn1neg (no bias) for
    negative sampling, syn1 with gensim's own Huffman paths for hierarchical softmax."""
    wv = model.wv
    if loss == "hs":
        codes = [wv.get_vecattr(w, "code") for w in wv.index_to_key]
        points = [wv.get_vecattr(w, "point") for w in wv.index_to_key]
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in codes])])
        head = HSHead(np.asarray(wv.expandos["count"]), model.vector_size,
                      tree=(offsets, np.concatenate(points).astype(np.int64), np.concatenate(codes).astype(np.int8)))
        head.weight.copy_(torch.as_tensor(model.syn1[:len(head.weight)]))
    else:
        head = OutputHead(len(wv), model.vector_size)
        head.weight.copy_(torch.as_tensor(model.syn1neg))
    return head


def copy_bandwidth(device: torch.device, mib: int = 1024, reps: int = 20) -> float:
    """Device memory bandwidth in bytes/s, measured as a device-to-device copy (read + write)."""
    src = torch.empty(mib << 18, dtype=torch.float32, device=device)  # mib MiB
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm up
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    torch.cuda.synchronize(device)
    return 2 * src.numel() * 4 * reps / (time.perf_counter() - t0)


def bound_fraction(row: dict, cfg: Config, bandwidth: float) -> float | None:
    """Pairs/s as a fraction of bandwidth / 8·d·(k+2) bytes a pair (sg with a noise head only)."""
    if cfg.model != "sg" or cfg.loss not in NOISE_HEADS:
        return None
    return row["examples_per_s"] * 8 * cfg.dim * (cfg.negatives + 2) / bandwidth


def train_ours(cfg: Config, train_txt: Path, held: Path, workdir: Path, max_contexts: int, log) -> dict:
    from ..step.plan import resolve_device
    from ..run.rundir import load_run, read_config
    from ..run.train import train

    device = resolve_device(cfg.device).type
    run_dir = workdir / f"ours-{cfg.model}-{cfg.loss}-{device}"
    summary = train(cfg, train_txt, run_dir, progress=True, log=log)
    run = load_run(run_dir)
    row = {"tool": "w2v-nce", "device": device, "model": cfg.model, "loss": cfg.loss,
           "train_words_per_s": summary.words_per_s, "train_seconds": summary.seconds,
           "vocab_seconds": summary.vocab_seconds, "vocab_size": summary.vocab_size,
           "examples_per_s": summary.examples / max(summary.seconds, 1e-9), "gpu_peak_mib": summary.gpu_peak_mib,
           "batch_size": summary.batch_size, "shared_noise": read_config(run_dir)[0].shared_noise}
    row.update(evaluate.scores(vectorfiles.load_vectors(run_dir)))
    row.update(held_stats(run["words"], run["input"], run["head"], cfg.model, cfg, held, max_contexts))
    shutil.rmtree(run_dir, ignore_errors=True)
    return row


GENSIM_LOSSES = ("neg", "hs")  # gensim's heads: negative sampling, hierarchical softmax


def train_gensim(cfg: Config, train_txt: Path, held: Path, threads: int, max_contexts: int, log) -> dict:
    """gensim's Word2Vec with the head cfg.loss names (neg or hs) and cfg's other settings."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    sentences = LineSentence(str(train_txt))  # lines longer than 10,000 words are split, as gensim does
    hs = cfg.loss == "hs"
    model = Word2Vec(vector_size=cfg.dim, window=cfg.window, negative=0 if hs else cfg.negatives, hs=int(hs),
                     sample=cfg.sample,
                     min_count=cfg.min_count, max_final_vocab=cfg.max_vocab, workers=threads,
                     sg=int(cfg.model == "sg"), cbow_mean=1, alpha=cfg.lr, min_alpha=cfg.lr * cfg.min_lr_ratio,
                     ns_exponent=cfg.noise_power, seed=cfg.seed)
    t0 = time.perf_counter()
    model.build_vocab(sentences)
    vocab_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=cfg.epochs)
    seconds = time.perf_counter() - t0
    words = model.corpus_total_words * cfg.epochs
    log(f"gensim {cfg.model}-{cfg.loss}: {words:,} words in {seconds:.1f} s ({words / seconds:,.0f} words/s)")
    row = {"tool": f"gensim {_version('gensim')}", "device": "cpu", "model": cfg.model, "loss": cfg.loss,
           "train_words_per_s": words / seconds, "train_seconds": seconds, "vocab_seconds": vocab_seconds,
           "vocab_size": len(model.wv)}
    row.update(evaluate.scores(model.wv))
    row.update(held_stats(model.wv.index_to_key, model.wv.vectors, gensim_head(model, cfg.loss), cfg.model, cfg,
                          held, max_contexts))
    return row


def _version(pkg: str) -> str:
    from importlib.metadata import version
    return version(pkg)


@contextlib.contextmanager
def gpu_order(workers: int, launch: int):
    """Emulates the CUDA kernel's staleness with the PyTorch step (make bench-gpu-emulated): each launch of
    `launch` examples is cut into `workers` contiguous shares, and the examples are reordered so that a
    mini-batch of `workers` examples holds example t of every share, as warps moving in lockstep would.
    Use with --kernel torch --batch-size workers."""
    from ..run.loops import Chunks

    original = Chunks.examples

    def examples(self, chunk):
        inputs, targets, mask = original(self, chunk)
        n, order = len(targets), []
        for s in range(0, n, launch):
            e = min(n, s + launch)
            per = -(-(e - s) // workers)
            idx = torch.arange(s, s + per * workers).view(-1, per).T.reshape(-1)  # step t: example t of every share
            order.append(idx[idx < e])
        p = torch.cat(order) if order else torch.zeros(0, dtype=torch.int64)
        return inputs[p], targets[p], None if mask is None else mask[p]

    Chunks.examples = examples
    try:
        yield
    finally:
        Chunks.examples = original


def machine(devices=()) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = sorted({torch.cuda.get_device_name(d) for d in devices if d.type == "cuda"})
    return f"{cpu}, {os.cpu_count()} cores, " + "".join(f"{g}, " for g in gpus) + f"torch {torch.__version__}"


def bench(corpus: Path, models: list[str], losses: list[str], epochs: int, threads: int, ours_only: bool,
          heldout_fraction: float = 0.005, max_contexts: int = 20000, overrides: dict | None = None,
          devices: tuple[str, ...] = ("cpu",), repeats: int = 1, log=print) -> tuple[list[dict], dict]:
    """Train and score every (model, loss, device) of ours and, per model, gensim's negative sampling and, when
    hs is among the losses, its hierarchical softmax; returns rows and settings.

    With repeats > 1 the whole sequence runs that many times (rounds, so every row sees the machine at each
    stage of a drift) and merge_rounds keeps each row's best speed and mean quality."""
    from ..step.plan import resolve_device

    torch.set_num_threads(threads)
    devices = [resolve_device(d) for d in devices]  # a usage error before any work when CUDA is missing
    bandwidth = {d.type: copy_bandwidth(d) for d in devices if d.type == "cuda"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="w2v-bench-") as tmp:
        workdir = Path(tmp)
        log(f"splitting {corpus}: {heldout_fraction:.1%} held out")
        train_txt, held = split_corpus(corpus, workdir, heldout_fraction)
        for rnd in range(repeats):
            if repeats > 1:
                log(f"round {rnd + 1} of {repeats}")
            rows += _round(models, losses, devices, epochs, threads, ours_only, overrides or {}, train_txt, held,
                           workdir, max_contexts, bandwidth, log)
    settings = make_config(None, model=models[0], loss=losses[0], epochs=epochs, threads=threads,
                           device=devices[0].type, lr=0.025, **(overrides or {}))
    meta = {"corpus": str(corpus), "date": datetime.date.today().isoformat(), "machine": machine(devices),
            "threads": threads, "settings": dataclasses.asdict(settings), "heldout_fraction": heldout_fraction}
    return merge_rounds(rows), meta


def _round(models, losses, devices, epochs, threads, ours_only, overrides, train_txt, held, workdir, max_contexts,
           bandwidth, log) -> list[dict]:
    rows = []
    for model in models:
        for loss in losses:
            for device in devices:
                cfg = make_config(None, model=model, loss=loss, epochs=epochs, threads=threads, device=device.type,
                                  lr=0.025, **overrides)
                log(f"w2v-nce {model}-{loss} on {device.type}")
                row = train_ours(cfg, train_txt, held, workdir, max_contexts, log)
                if device.type == "cuda":
                    row["bandwidth"] = bandwidth["cuda"]
                    row["bound_fraction"] = bound_fraction(row, cfg, bandwidth["cuda"])
                rows.append(row)
        for loss in [] if ours_only else [g for g in GENSIM_LOSSES if g == "neg" or g in losses]:
            cfg = make_config(None, model=model, loss=loss, epochs=epochs, threads=threads, lr=0.025, device="cpu",
                              **{k: v for k, v in overrides.items() if k not in ("kernel", "shared_noise")})
            log(f"gensim {model}-{loss}")
            rows.append(train_gensim(cfg, train_txt, held, threads, max_contexts, log))
    return rows


SCORES = ("analogy", "ws353", "simlex", "mean_log_z", "heldout_nll")


def merge_rounds(rows: list[dict]) -> list[dict]:
    """One row per (tool, device, model, loss), in first-seen order: the best speed of its rounds (timing noise
    only ever slows a run down; on a shared machine it drifts by ±30% within minutes), the slowest beside it
    (words_per_s_min), and the mean of each score."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["tool"], r.get("device", "cpu"), r["model"], r["loss"]), []).append(r)
    merged = []
    for group in groups.values():
        best = dict(max(group, key=lambda r: r["train_words_per_s"]))
        best["rounds"] = len(group)
        best["words_per_s_min"] = min(r["train_words_per_s"] for r in group)
        best["vocab_seconds"] = min(r["vocab_seconds"] for r in group)
        for key in SCORES:
            values = [r[key] for r in group]
            best[key] = None if None in values else float(np.mean(values))
        merged.append(best)
    return merged


def markdown(rows: list[dict], meta: dict, command: str) -> str:
    s = meta["settings"]
    # ours against gensim's same head where gensim has it (hs), else against its negative sampling
    gensim_speed = {(r["model"], r["loss"]): r["train_words_per_s"] for r in rows if r["tool"].startswith("gensim")}
    # the default batch depends on the device and the step (step.plan.make_plan)
    batches = {r.get("device", "cpu"): r.get("batch_size", s["batch_size"]) for r in rows if r["tool"] == "w2v-nce"}
    batch = (", ".join(f"{b} on {d}" for d, b in batches.items()) if len(batches) > 1
             else str(next(iter(batches.values()), s["batch_size"])))
    # step.plan.make_plan's, per head (sg's differ by loss)
    shares = {f"{r['model']}-{r['loss']}": r["shared_noise"] for r in rows if r.get("shared_noise", 1) > 1}
    share = ("noise words shared by " + ", ".join(f"{b} examples in {h}" for h, b in shares.items()) if shares
             else "noise words not shared")
    out = [f"Command: `{command}`  ", f"Machine: {meta['machine']}; {meta['threads']} threads  ",
           f"Date: {meta['date']}; corpus {meta['corpus']} ({meta['heldout_fraction']:.1%} held out)  ",
           f"Both tools: dim {s['dim']}, window {s['window']}, negatives {s['negatives']}, sample {s['sample']}, "
           f"min_count {s['min_count']}, epochs {s['epochs']}, lr {s['lr']} decayed linearly to lr*{s['min_lr_ratio']}, "
           f"noise unigram^{s['noise_power']}, seed {s['seed']}. Ours: batch {batch} examples per call of the step, "
           f"kernel {s['kernel']}, {share}; "
           "gensim: LineSentence, cbow_mean=1; neg: negative=k, hs=0; hs: negative=0, hs=1.", "",
           "| tool | device | model | loss | train words/s | vs gensim | vocab s | analogy | WS353 | SimLex | mean log Z | held-out NLL |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rounds = max(r.get("rounds", 1) for r in rows)
    if rounds > 1:
        out[-3:-3] = ["", f"Rounds: {rounds}, one after another; train words/s is each row's best round, the slowest "
                      "in brackets; the scores are means over the rounds."]
    for r in rows:
        base = gensim_speed.get((r["model"], r["loss"]), gensim_speed.get((r["model"], "neg")))
        ratio = r["train_words_per_s"] / base if base else None
        speed = f"{r['train_words_per_s']:,.0f}" + (f" ({r['words_per_s_min']:,.0f})" if r.get("rounds", 1) > 1 else "")
        out.append(f"| {r['tool']} | {r.get('device', 'cpu')} | {r['model']} | {r['loss']} | {speed} | "
                   f"{'' if ratio is None else f'{ratio:.2f}x'} | {r['vocab_seconds']:.1f} | {r['analogy']:.3f} | "
                   f"{_f(r['ws353'])} | {_f(r['simlex'])} | {r['mean_log_z']:+.2f} | {r['heldout_nll']:.3f} |")
    ours = {(r.get("device", "cpu"), r["model"], r["loss"]): r["train_words_per_s"] for r in rows if r["tool"] == "w2v-nce"}
    pairs = [(d, m, ours[d, m, "nce"] / ours[d, m, "neg"]) for d, m, l in ours if l == "neg" and (d, m, "nce") in ours]
    if pairs:
        out += ["", "nce / neg train words/s: " + "; ".join(f"{m} on {d} {x:.2f}" for d, m, x in pairs)]
    gpu = [r for r in rows if r.get("gpu_peak_mib") is not None]
    if gpu:
        out += ["", "On the GPU (copy bandwidth measured in this run: "
                f"{gpu[0]['bandwidth'] / 1e9:,.0f} GB/s; bound = bandwidth / 8·d·(k+2) bytes a pair):", ""]
        for r in gpu:
            frac = "" if r.get("bound_fraction") is None else f", {r['bound_fraction']:.1%} of the bandwidth bound"
            out.append(f"- {r['model']}-{r['loss']}: {r['examples_per_s'] / 1e6:,.1f}M examples/s{frac}; "
                       f"peak GPU memory {r['gpu_peak_mib']:,.0f} MiB")
    return "\n".join(out) + "\n"


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def write_report(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
