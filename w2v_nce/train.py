"""Training: corpus -> vocabulary -> examples -> SGD, into a run directory.

Run directory layout: config.toml (resolved hyperparameters), vocab.tsv, corpus.ids (the int32
encoded corpus, memory-mapped), checkpoint.pt (both embedding matrices, the output bias and the exact
training position), vectors.kv (gensim KeyedVectors of the input vectors). While a run is in progress
or was interrupted the directory holds INCOMPLETE; runs/latest points at the newest complete run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import batches, export, vocab as vocab_mod
from .config import Config, load_toml, to_toml
from .errors import UsageError, W2VError
from .files import atomic_path
from .heads import make_head
from .model import Word2Vec
from .sampling import AliasSampler, keep_probs

RUNS = Path("runs")
INCOMPLETE = "INCOMPLETE"
CHECKPOINT = "checkpoint.pt"


class Interrupted(W2VError):
    """Training stopped by SIGINT / SIGTERM after saving a checkpoint (exit 130 / 143)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def default_run_dir(corpus: Path, cfg: Config) -> Path:
    """runs/<corpus stem>-<model>-<loss>, with -2, -3, ... so an earlier run is never overwritten."""
    stem = corpus.name.split(".")[0] or "corpus"
    base = RUNS / f"{stem}-{cfg.model}-{cfg.loss}"
    run, n = base, 1
    while run.exists():
        n += 1
        run = base.with_name(f"{base.name}-{n}")
    return run


def point_latest(run_dir: Path) -> None:
    """Atomically repoint runs/latest at run_dir (a relative link when run_dir is inside runs/)."""
    RUNS.mkdir(exist_ok=True)
    run_dir = run_dir.resolve()
    target = os.path.relpath(run_dir, RUNS.resolve()) if run_dir.parent == RUNS.resolve() else str(run_dir)
    tmp = RUNS / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, RUNS / "latest")


def lr_at(cfg: Config, words_done: float, total_words: float) -> float:
    """word2vec's linear decay from lr to lr * min_lr_ratio over all epochs."""
    return cfg.lr * max(cfg.min_lr_ratio, 1.0 - words_done / (total_words + 1))


class Trainer:
    """Holds the training state, so that a run can be checkpointed at any batch and resumed exactly."""

    def __init__(self, cfg: Config, run_dir: Path, vocab: vocab_mod.Vocab, device: torch.device):
        self.cfg, self.run_dir, self.vocab, self.device = cfg, run_dir, vocab, device
        self.ids = vocab_mod.load_ids(run_dir / "corpus.ids")
        # chunk boundaries and the number of words (separators excluded) before each chunk
        self.starts = list(range(0, len(self.ids), cfg.chunk_tokens)) or [0]
        seps = [int(np.count_nonzero(self.ids[s:s + cfg.chunk_tokens] == vocab_mod.SEPARATOR)) for s in self.starts]
        self.chunk_words = [min(cfg.chunk_tokens, len(self.ids) - s) - n for s, n in zip(self.starts, seps)]
        self.epoch_words = sum(self.chunk_words)
        self.total_words = self.epoch_words * cfg.epochs
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(cfg.seed)
        init_gen = torch.Generator().manual_seed(cfg.seed)
        sampler = AliasSampler(vocab.counts, cfg.noise_power, device)
        head = make_head(cfg.loss, len(vocab), cfg.dim, sampler, cfg.negatives)
        self.model = Word2Vec(len(vocab), cfg.dim, cfg.model, head, init_gen).to(device)
        self.keep = torch.as_tensor(keep_probs(vocab.counts, cfg.sample), dtype=torch.float32, device=device)
        # position: next (epoch, chunk, batch); the generator state at that chunk's start
        self.epoch = self.chunk = self.batch = 0
        self.chunk_gen_state = None
        self.words_done = 0.0
        self.step = 0
        self.loss_sum, self.loss_count = 0.0, 0

    # -- examples ---------------------------------------------------------------------------------
    def examples(self, chunk: int):
        """All examples of one chunk as (inputs, targets, mask or None), drawn from self.gen."""
        s = self.starts[chunk]
        ids = torch.from_numpy(np.asarray(self.ids[s:s + self.cfg.chunk_tokens], dtype=np.int64)).to(self.device)
        ids = batches.subsample(ids, self.keep, self.gen)
        words, lines = batches.split_lines(ids)
        eff = batches.draw_windows(len(words), self.cfg.window, self.device, self.gen)
        if self.cfg.model == "sg":
            centres, contexts = batches.skipgram_pairs(words, lines, eff, self.cfg.window)
            return centres, contexts, None
        ctx, mask, centre = batches.cbow_examples(words, lines, eff, self.cfg.window)
        return ctx, centre, mask

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, bar: tqdm | None = None, stop=lambda: False) -> None:
        cfg = self.cfg
        last_report = time.perf_counter()
        loss_acc = torch.zeros((), device=self.device)
        n_acc = 0
        while self.epoch < cfg.epochs:
            while self.chunk < len(self.starts):
                if self.batch == 0:
                    self.chunk_gen_state = self.gen.get_state()
                    inputs, targets, mask = self.examples(self.chunk)
                else:  # resuming inside a chunk: redraw the same examples, then continue the noise stream
                    now = self.gen.get_state()
                    self.gen.set_state(self.chunk_gen_state)
                    inputs, targets, mask = self.examples(self.chunk)
                    self.gen.set_state(now)
                n = len(targets)
                n_batches = max(1, math.ceil(n / cfg.batch_size))
                words_before = self.epoch * self.epoch_words + sum(self.chunk_words[:self.chunk])
                chunk_words = self.chunk_words[self.chunk]
                while self.batch < n_batches:
                    if stop():
                        raise KeyboardInterrupt
                    b = self.batch
                    sl = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
                    self.words_done = words_before + chunk_words * (b + 1) / n_batches
                    lr = lr_at(cfg, self.words_done, self.total_words)
                    if n:
                        loss_acc += self.model.train_step(inputs[sl], targets[sl], lr,
                                                          None if mask is None else mask[sl], self.gen)
                        n_acc += len(targets[sl])
                    self.batch += 1
                    self.step += 1
                    now = time.perf_counter()
                    if bar is not None and (now - last_report > 0.5 or self.batch == n_batches):
                        last_report = now
                        self._report(bar, loss_acc, n_acc, lr)
                        loss_acc.zero_()
                        n_acc = 0
                self.chunk += 1
                self.batch = 0
            self.epoch += 1
            self.chunk = 0
        if n_acc:
            self._report(bar, loss_acc, n_acc, lr_at(cfg, self.words_done, self.total_words))

    def _report(self, bar, loss_acc, n_acc, lr):
        loss = float(loss_acc) / max(n_acc, 1)
        if not math.isfinite(loss):
            raise Diverged(self.step, lr)
        if n_acc:
            self.loss_sum, self.loss_count = loss, n_acc
        if bar is not None:
            bar.n = int(self.words_done)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", refresh=False)
            bar.refresh()

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> dict:
        m = self.model
        return {
            "format": 1,
            "config": dataclasses.asdict(self.cfg),
            "input": m.input.detach().cpu(), "output": m.head.weight.detach().cpu(),
            "bias": m.head.bias.detach().cpu(),
            "position": {"epoch": self.epoch, "chunk": self.chunk, "batch": self.batch, "step": self.step,
                         "words_done": self.words_done},
            "gen_state": self.gen.get_state().cpu(),
            "chunk_gen_state": None if self.chunk_gen_state is None else self.chunk_gen_state.cpu(),
            "loss": self.loss_sum,
        }

    def load_state(self, st: dict) -> None:
        m = self.model
        m.input.copy_(st["input"])
        m.head.weight.copy_(st["output"])
        m.head.bias.copy_(st["bias"])
        pos = st["position"]
        self.epoch, self.chunk, self.batch, self.step = pos["epoch"], pos["chunk"], pos["batch"], pos["step"]
        self.words_done = pos["words_done"]
        self.gen.set_state(st["gen_state"])
        self.chunk_gen_state = st["chunk_gen_state"]
        self.loss_sum = st.get("loss", 0.0)

    def save(self) -> None:
        with atomic_path(self.run_dir / CHECKPOINT) as tmp:
            torch.save(self.state(), tmp)

    def save_vectors(self) -> None:
        vecs = self.model.input.detach().cpu().numpy()
        kv = export.to_keyed_vectors(self.vocab.words, self.vocab.counts, vecs)
        export.save_kv(kv, self.run_dir / "vectors.kv")


class Diverged(W2VError):
    def __init__(self, step: int, lr: float):
        super().__init__(f"training diverged (loss is NaN or infinite) near step {step} at learning rate "
                         f"{lr:.3g}; the last good checkpoint is kept; retry with a lower --lr")
        self.step = step


@dataclasses.dataclass
class Summary:
    run_dir: Path
    words: int
    seconds: float
    words_per_s: float
    loss: float
    vocab_size: int
    vocab_seconds: float


def prepare(cfg: Config, corpus: Path, run_dir: Path, log=print) -> tuple[vocab_mod.Vocab, dict]:
    """Create the run directory (marked INCOMPLETE) with config.toml, vocab.tsv and corpus.ids."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / INCOMPLETE).write_text("training has not finished; resume with `w2v-nce train --resume DIR`\n")
    vocab, stats = vocab_mod.build(corpus, run_dir / "corpus.ids", cfg.min_count, cfg.max_vocab,
                                   cfg.lowercase, cfg.encoding_errors)
    vocab.save(run_dir / "vocab.tsv")
    info = {"corpus": str(Path(corpus).resolve()), "tokens": stats["tokens"], "kept_tokens": stats["kept_tokens"],
            "vocab_size": len(vocab), "vocab_seconds": round(stats["seconds"], 3),
            "replaced_bytes": stats["replaced_bytes"]}
    with atomic_path(run_dir / "config.toml") as tmp:
        tmp.write_text(to_toml(cfg, {"run": info}), encoding="utf-8")
    return vocab, info


def train(cfg: Config, corpus: Path | None, run_dir: Path | None = None, resume: bool = False,
          progress: bool = True, log=print) -> Summary:
    """Train a model; returns a summary. With resume=True, run_dir holds an interrupted run."""
    if resume:
        if run_dir is None or not (run_dir / CHECKPOINT).exists() or not (run_dir / "vocab.tsv").exists():
            raise UsageError(f"nothing to resume in {run_dir}: it has no {CHECKPOINT}")
        saved = load_toml(run_dir / "config.toml")
        cfg = Config(**saved).validate().resolved()
        vocab = vocab_mod.Vocab.load(run_dir / "vocab.tsv")
        info = _read_toml(run_dir / "config.toml").get("run", {})
        vocab_seconds = 0.0
    else:
        run_dir = run_dir or default_run_dir(Path(corpus), cfg)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} already exists and is not empty; pass another --out "
                             "or --resume it")
        device = resolve_device(cfg.device)  # fail before any work
        created = not run_dir.exists()
        try:
            vocab, info = prepare(cfg, Path(corpus), run_dir, log)
        except BaseException:
            if created:  # nothing of a run that never started is left behind
                import shutil
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        vocab_seconds = info["vocab_seconds"]
        log(f"vocabulary: {len(vocab):,} words from {info['tokens']:,} tokens in {vocab_seconds:.1f} s"
            + (f" ({info['replaced_bytes']} invalid bytes replaced)" if info["replaced_bytes"] else ""))
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    trainer = Trainer(cfg, run_dir, vocab, device)
    if resume:
        trainer.load_state(torch.load(run_dir / CHECKPOINT, map_location=device, weights_only=False))
    bar = tqdm(total=trainer.total_words, unit="w", unit_scale=True, dynamic_ncols=True, disable=not progress,
               desc=f"{cfg.model}-{cfg.loss}", initial=int(trainer.words_done))
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} \
        if _main_thread() else {}
    start_words, t0 = trainer.words_done, time.perf_counter()
    try:
        trainer.run(bar, stop=lambda: stop["signal"] is not None)
    except KeyboardInterrupt:
        bar.close()
        trainer.save()
        code = 130 if stop["signal"] in (None, signal.SIGINT) else 143
        raise Interrupted(f"interrupted at epoch {trainer.epoch + 1}, step {trainer.step}; checkpoint saved; "
                          f"continue with: w2v-nce train --resume {run_dir}", code=code) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    seconds = time.perf_counter() - t0
    bar.close()
    trainer.save()
    trainer.save_vectors()
    (run_dir / INCOMPLETE).unlink(missing_ok=True)
    point_latest(run_dir)
    # words/s counts corpus tokens (rare words dropped by --min-count included), as gensim and word2vec.c do
    words = (trainer.total_words - start_words) * info.get("tokens", trainer.epoch_words) / max(trainer.epoch_words, 1)
    summary = Summary(run_dir, int(words), seconds, words / max(seconds, 1e-9), trainer.loss_sum,
                      len(vocab), vocab_seconds)
    log(f"trained {summary.words:,} words in {seconds:.1f} s ({summary.words_per_s:,.0f} words/s), "
        f"final loss {summary.loss:.4f}; run directory {run_dir}")
    return summary


def load_run(run_dir: Path) -> dict:
    """A run directory's config, vocabulary and checkpoint tensors (on the CPU)."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        raise W2VError(f"{run_dir} is not a run directory (no {CHECKPOINT}); pass one written by `w2v-nce train`")
    cfg = Config(**_read_toml(run_dir / "config.toml").get("train", {})).validate().resolved()
    vocab = vocab_mod.Vocab.load(run_dir / "vocab.tsv")
    try:
        st = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: torch raises several types
        raise W2VError(f"cannot read {run_dir / CHECKPOINT}: {str(e).splitlines()[0]}; the run directory is damaged") from None
    if st["input"].shape[0] != len(vocab):
        raise W2VError(f"{run_dir}: checkpoint and vocab.tsv disagree; the run directory is damaged")
    return {"config": cfg, "words": vocab.words, "counts": vocab.counts, "input": st["input"],
            "output": st["output"], "bias": st["bias"], "complete": not (run_dir / INCOMPLETE).exists()}


def _read_toml(path: Path) -> dict:
    import tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise W2VError(f"cannot read {path}: {e}; the run directory is damaged") from None


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()
