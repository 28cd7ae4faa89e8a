"""Training: corpus -> vocabulary -> examples -> SGD, into a run directory (its files: rundir.py).

A run is checkpointed when training starts, at every epoch end and when it is stopped (Ctrl-C, SIGTERM, a
failed write), and it appends its history to metrics.jsonl as it goes. Whatever stops it, the run directory
keeps its last good checkpoint and `train --resume` continues from there; only a finished run loses its
INCOMPLETE mark and becomes runs/latest.

Launched by torchrun with several processes, the same function trains one model with all of them: rank 0
prepares and writes the run directory and sends the others their data (distributed.py), and every rank runs
this loop on its shard while replicas.py keeps the copies of the model in step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import backends, batches, distributed, phrases, pieces, rundir, vocab as vocab_mod
from .config import Config, parse_size, to_toml
from .errors import Interrupted, StorageError, UsageError, W2VError, storage_error
from .files import atomic_path
from .heads import make_head
from .model import Word2Vec
from .replicas import SAFE_GAIN, Replicas, rule
from .rundir import CHECKPOINT, INCOMPLETE, History
from .sampling import AliasSampler, keep_probs
from .tokenize import describe, reading_bar
from .continued import carry, prior as _prior



SMALL_CORPUS = 10_000_000  # words under which `train` says that analogy scores need more text


def lr_at(cfg: Config, words_done: float, total_words: float) -> float:
    """word2vec's linear decay from lr to lr * min_lr_ratio over all epochs."""
    return cfg.lr * max(cfg.min_lr_ratio, 1.0 - words_done / (total_words + 1))


class Trainer:
    """Holds the training state, so that a run can be checkpointed at any batch and resumed exactly."""

    def __init__(self, cfg: Config, run_dir: Path, vocab: vocab_mod.Vocab, plan: backends.Plan,
                 ids: np.ndarray | None = None, rank: int = 0, log=lambda *_: None, single: bool = True):
        self.cfg, self.run_dir, self.vocab, self.plan = cfg, run_dir, vocab, plan
        self.device = device = plan.device
        self.ids = rundir.open_ids(run_dir, None, len(vocab)) if ids is None else ids
        # chunk boundaries and the number of words (separators excluded) before each chunk
        self.starts = list(range(0, len(self.ids), cfg.chunk_tokens)) or [0]
        seps = [int(np.count_nonzero(self.ids[s:s + cfg.chunk_tokens] == vocab_mod.SEPARATOR)) for s in self.starts]
        self.chunk_words = [min(cfg.chunk_tokens, len(self.ids) - s) - n for s, n in zip(self.starts, seps)]
        self.epoch_words = sum(self.chunk_words)
        self.total_words = self.epoch_words * cfg.epochs
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(cfg.seed + rank)  # each rank of a distributed run its own stream
        init_gen = torch.Generator().manual_seed(cfg.seed)  # and every rank the same initial model
        sampler = AliasSampler(vocab.counts, cfg.noise_power, device)
        head = make_head(cfg.loss, vocab.counts, cfg.dim, sampler, cfg.negatives)
        self.model = Word2Vec(len(vocab), cfg.dim, cfg.model, head, init_gen).to(device)
        t = time.perf_counter()
        # numba's compile of the step, or its load from numba's cache (a fraction of a second): a compile pauses 5-15
        # s, so the user is told why, once it has lasted a second
        says = threading.Timer(1.0, log, (f"compiling the training step for --loss {cfg.loss} at --dim {cfg.dim}: once "
                                          "per installation (numba keeps it; later runs load it at once)",))
        says.daemon = True
        says.start()
        self.keep = torch.as_tensor(keep_probs(vocab.counts, cfg.sample), dtype=torch.float32, device=device)
        # one process on the CPU trains by pieces, its threads free of each other (pieces.py); several processes, and
        # the GPU and the PyTorch step, by the chunk loop below
        self.pieces = None
        try:
            threads = cfg.threads or os.cpu_count() or 1
            plan.prepare(head, threads)
            if single and plan.kernel == "fused" and device.type == "cpu":
                self.pieces = pieces.Threads(self.ids, self.keep.numpy(), self.model, plan, cfg, threads,
                                             cfg.seed + rank)
                self.pieces.warm_up()
        finally:
            says.cancel()
        self.compile_s = time.perf_counter() - t
        self.ids_on_device = self._upload_ids()
        # on a GPU each chunk's examples are drawn during the last chunk's training (_draw_ahead), on a side stream
        self.draw_ahead = device.type == "cuda"
        self.side = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.ahead = None
        # position: next (epoch, chunk, batch); the generator state at that chunk's start, None until the
        # chunk's examples are drawn (a checkpoint can fall between drawing them and the first batch)
        self.epoch = self.chunk = self.batch = 0
        self.piece = 0  # the next piece of the epoch, where training goes by pieces
        self.stop_at: tuple[int, int] | None = None  # (epoch, piece): stop there, as a Ctrl-C would (the tests)
        self.chunk_gen_state = None
        self.words_done = 0.0
        self.step = 0
        self.examples_done = 0  # examples trained on by this process (pairs for sg, centre words for cbow)
        self.loss_sum = 0.0  # mean loss per example over the last reported steps (the progress bar)
        # the epoch's summed loss (float64, on the device: no synchronisation a step) and its examples: every step's
        self.epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
        self.epoch_examples = 0
        self.last_epoch_loss: float | None = None  # the mean loss per example of the last finished epoch
        self.stop_asked = False  # a callback returned False (or raised): stop at the next batch, resumably
        self.rank = rank
        self.last_row: dict | None = None  # the last epoch's row of metrics.jsonl
        self.on_progress = None  # called with each progress row of metrics.jsonl (the API's callbacks)
        # the run's progress, which sets the learning rate: this process's, or in a distributed run (replicas.py)
        # the words of all ranks at the last synchronisation plus this rank's since, times the ranks
        self.world, self.global_total, self.synced = 1, self.total_words, (0.0, 0.0)
        self.lr_scale = 1.0  # each replica's learning rate, in multiples of one process's (replicas.rule)
        self.replicas = None  # replicas.Replicas in a distributed run
        self.lr = lr_at(cfg, 0.0, self.total_words)
        self.history: History | None = None  # metrics.jsonl, where train() opened it
        self.token_scale = 1.0  # corpus tokens per trained word: words/s counts tokens, as gensim does
        self.saved: dict | None = None  # the position of the checkpoint on disk
        self.resume_cmd = rundir.resume_command(run_dir)  # how to continue the run, for messages
        # training seconds: of earlier processes (from the checkpoint), of this one, and since when it runs
        self.elapsed_before, self.seconds, self._since = 0.0, 0.0, None
        self._start = (0.0, 0.0)  # (words_done, elapsed) when this process started training

    # -- examples ---------------------------------------------------------------------------------
    def _upload_ids(self) -> torch.Tensor | None:
        """On a GPU, the encoded corpus copied to it once (int32), where it takes at most an eighth of the free
        memory: read from the host for every chunk, it was half of the example generation's time, which the
        kernel waited for (BENCHMARKS.md section 6). Copied a chunk at a time, so the host holds no second copy."""
        if self.device.type != "cuda" or self.ids.nbytes > torch.cuda.mem_get_info(self.device)[0] // 8:
            return None
        on = torch.empty(len(self.ids), dtype=torch.int32, device=self.device)
        for s in self.starts:
            on[s:s + self.cfg.chunk_tokens].copy_(torch.from_numpy(np.array(self.ids[s:s + self.cfg.chunk_tokens])))
        return on

    def examples(self, chunk: int):
        """All examples of one chunk as (inputs, targets, mask or None), drawn from self.gen."""
        s = self.starts[chunk]
        if self.ids_on_device is not None:
            ids = self.ids_on_device[s:s + self.cfg.chunk_tokens].long()
        else:
            ids = torch.from_numpy(np.asarray(self.ids[s:s + self.cfg.chunk_tokens], dtype=np.int64)).to(self.device)
        ids = batches.subsample(ids, self.keep, self.gen)
        words, lines = batches.split_lines(ids)
        eff = batches.draw_windows(len(words), self.cfg.window, self.device, self.gen)
        if self.cfg.model == "sg":
            inputs, targets = batches.skipgram_pairs(words, lines, eff, self.cfg.window)
            return inputs, targets, None
        ctx, mask, centre = batches.cbow_examples(words, lines, eff, self.cfg.window)
        return ctx, centre, mask

    def _draw_ahead(self, chunk: int) -> None:
        """On a GPU: the next chunk's examples, drawn on a side stream while the device still trains on this one's
        (its launches are queued, and the host does not wait for them), into self.ahead = ((epoch, chunk), the
        generator's state before them, examples). They are drawn at the same point of the generator's sequence as
        at the top of the loop, and a checkpoint taken before the loop uses them holds the state before them, so a
        run, and its resume from any point, are the same as without. Drawn in line, the device waited for the
        host's part of every chunk's drawing: cbow trained at 108-128M words/s in `train`, and at 151M in a profile
        of the kernel and the drawing alone (BENCHMARKS.md section 6)."""
        state = self.gen.get_state()
        if self.side is None:  # the CPU (the tests): the same draws, in line
            examples = self.examples(chunk)
        else:
            main = torch.cuda.current_stream(self.device)
            with torch.cuda.stream(self.side):
                examples = self.examples(chunk)
            main.wait_stream(self.side)  # the next launches wait for them; those already queued do not
            for t in examples:
                if t is not None:
                    t.record_stream(main)  # their memory is not reused by the side stream while main reads it
        self.ahead = ((self.epoch, chunk), state, examples)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, bar: tqdm | None = None, stop=lambda: False, on_epoch_end=lambda: None) -> None:
        if self.pieces is not None:
            return self._run_pieces(bar, stop, on_epoch_end)
        cfg = self.cfg
        last_report = time.perf_counter()
        pending: list[torch.Tensor] = []  # per-step summed losses, still on the device (no sync per step)
        n_pending = 0
        self._start = (self.global_words(), self.elapsed())
        self._since = time.perf_counter()
        try:
            while self.epoch < cfg.epochs:
                while self.chunk < len(self.starts):
                    # the last chunk's examples go before this one's are drawn: two chunks' at once were a third of
                    # the peak memory of a training run (BENCHMARKS.md section 5)
                    inputs = targets = mask = None
                    if self.ahead is not None and self.ahead[0] == (self.epoch, self.chunk):
                        _, self.chunk_gen_state, (inputs, targets, mask) = self.ahead  # drawn during the last chunk
                        self.ahead = None
                    elif self.chunk_gen_state is None:  # this chunk's examples are not drawn yet
                        self.chunk_gen_state = self.gen.get_state()
                        inputs, targets, mask = self.examples(self.chunk)
                    else:  # resumed inside a chunk: redraw the same examples, then continue the noise stream
                        now = self.gen.get_state()
                        self.gen.set_state(self.chunk_gen_state)
                        inputs, targets, mask = self.examples(self.chunk)
                        self.gen.set_state(now)
                    n = len(targets)
                    n_batches = max(1, math.ceil(n / self.plan.batch_size))
                    words_before = self.epoch * self.epoch_words + sum(self.chunk_words[:self.chunk])
                    chunk_words = self.chunk_words[self.chunk]
                    while self.batch < n_batches:
                        if stop():
                            raise KeyboardInterrupt
                        b = self.batch
                        sl = slice(b * self.plan.batch_size, (b + 1) * self.plan.batch_size)
                        self.lr = self.rate(words_before + chunk_words * b / n_batches)
                        if n:
                            loss = self.plan.step(self.model, inputs[sl], targets[sl], self.lr,
                                                  None if mask is None else mask[sl], self.gen)
                            pending.append(loss)
                            self.epoch_loss += loss
                            size = len(targets[sl])
                            self.examples_done += size
                            self.epoch_examples += size
                            n_pending += size
                        self.batch += 1
                        self.step += 1
                        self.words_done = words_before + chunk_words * self.batch / n_batches
                        if self.batch == n_batches and self.draw_ahead and self.chunk + 1 < len(self.starts):
                            self._draw_ahead(self.chunk + 1)  # before the report waits for the device
                        now = time.perf_counter()
                        # also after the first step: a fast run's curve starts there, not at its first chunk's end
                        if now - last_report > 0.5 or self.batch == n_batches or self.step == 1:
                            last_report = now
                            self._report(bar, pending, n_pending)
                            pending, n_pending = [], 0
                    self.chunk += 1
                    self.batch = 0
                    self.chunk_gen_state = None
                self._next_epoch(on_epoch_end)
        finally:
            self._pause()

    def _next_epoch(self, on_epoch_end) -> None:
        """An epoch trained: the next one's position, and the epoch end's checkpoint and scores (on_epoch_end), which
        are not training time."""
        self.epoch += 1
        self.chunk = self.piece = 0
        self._pause()
        on_epoch_end()
        self._since = time.perf_counter()

    def _run_pieces(self, bar, stop, on_epoch_end) -> None:
        """run() by pieces (pieces.py): the threads train an epoch's pieces; this thread reports them as they finish
        and stops them (a signal, a callback, a non-finite loss) at the pieces begun. The position is (epoch, piece),
        every piece before it trained."""
        cfg, threads = self.cfg, self.pieces
        last_report = [time.perf_counter()]
        self._start = (self.global_words(), self.elapsed())
        self._since = time.perf_counter()

        def rate(before: int) -> float:
            return self.rate(self.epoch * self.epoch_words + before)

        pending: list[torch.Tensor] = []  # the pieces' summed losses since the last report, and their examples
        n_pending = [0]

        def report(done, chunk_end: bool, quiet: bool = False) -> None:
            for piece, loss, examples, words, lr in sorted(done):
                pending.append(torch.tensor(loss, dtype=torch.float64))
                self.epoch_loss += loss
                self.examples_done += examples
                self.epoch_examples += examples
                n_pending[0] += examples
                self.words_done += words
                self.step += 1
                self.lr = min(self.lr, lr)  # the rate of the latest piece done (the threads finish out of order)
            now = time.perf_counter()
            # after the first piece (a fast run's curve starts there), at each chunk's end, twice a second, and at
            # once when a loss is not finite (_report stops training)
            if not quiet and (now - last_report[0] > 0.5 or self.step == len(done) or chunk_end
                    or not all(math.isfinite(d[1]) for d in done)):
                last_report[0] = now
                self._report(bar, pending, n_pending[0])
                pending.clear()
                n_pending[0] = 0

        try:
            while self.epoch < cfg.epochs:
                self.words_done = self.epoch * self.epoch_words + float(threads.before[self.piece])
                try:
                    last = self.stop_at[1] if self.stop_at is not None and self.stop_at[0] == self.epoch else None
                    self.piece = threads.epoch(self.epoch, self.piece, rate, stop, report, last)
                finally:  # the pieces done are the first ones, even when something stopped them
                    self.piece = threads.done
                    self.words_done = self.epoch * self.epoch_words + float(threads.before[self.piece])
                if self.piece < len(threads.bounds):
                    raise KeyboardInterrupt  # stopped (a signal, a callback): the loop's caller checkpoints
                self._next_epoch(on_epoch_end)
        finally:
            self._pause()

    def _report(self, bar, pending, n_pending):
        if not pending:
            return
        losses = torch.stack(pending)  # (steps,)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise Diverged(self.step - len(pending) + first + 1, self.lr,
                           self.plan.batch_size if self.plan.kernel == "torch" else 0,
                           backends.largest_summed_batch(self.cfg.loss))
        if n_pending:
            self.loss_sum = float(losses.sum()) / n_pending
        row = self.record("progress")
        if self.on_progress is not None and row is not None:
            self.on_progress(row)
        if bar is not None:
            bar.n = int(self.global_words() * self.token_scale)
            bar.set_postfix(loss=f"{self.loss_sum:.4f}", lr=f"{self.lr:.3g}", refresh=False)
            bar.refresh()

    def global_words(self, local: float | None = None) -> float:
        """Words trained by the whole run when this process has trained `local` (by default, so far)."""
        local = self.words_done if local is None else local
        return self.synced[0] + (local - self.synced[1]) * self.world

    def rate(self, local: float) -> float:
        return lr_at(self.cfg, self.global_words(local), self.global_total) * self.lr_scale

    # -- time and history -------------------------------------------------------------------------
    def _pause(self) -> None:
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def elapsed(self) -> float:
        """Training seconds of the whole run so far, earlier processes included (writing and scoring not)."""
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return self.elapsed_before + self.seconds + running

    def record(self, event: str, **extra) -> dict | None:
        """One line of metrics.jsonl (returned): where training is, its loss, rate and speed. Words are corpus
        tokens, as in the progress bar and the summary (words dropped by --min-count and sub-sampling count), for the
        whole run, its earlier processes included."""
        if self.history is None:
            return None
        elapsed = self.elapsed()
        words, seconds = self.global_words() - self._start[0], elapsed - self._start[1]
        return self.history.write(event, words=round(self.global_words() * self.token_scale),
                                  epoch=self.epoch + (event != "epoch"), step=self.step,
                                  **{"loss": self.loss_sum, **extra}, lr=self.lr, elapsed_s=round(elapsed, 3),
                                  words_per_s=round(words * self.token_scale / seconds) if seconds > 0 else None)

    def end_epoch_loss(self) -> float | None:
        """The finished epoch's mean loss per example, over every step; the next epoch's sum starts at 0."""
        mean = float(self.epoch_loss) / self.epoch_examples if self.epoch_examples else None
        self.epoch_loss.zero_()
        self.epoch_examples = 0
        self.last_epoch_loss = mean if mean is not None else self.last_epoch_loss
        return mean

    # -- state ------------------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every trained tensor, by its name in the checkpoint: the input vectors, the head's rows and biases."""
        m = self.model
        return dict(zip(rundir.TENSORS, (m.input, m.head.weight, m.head.bias)))

    def position_state(self) -> dict:
        """Where training is and the random stream's state: what a checkpoint holds besides the tensors."""
        return {
            "position": {"epoch": self.epoch, "chunk": self.chunk, "batch": self.batch, "piece": self.piece,
                         "step": self.step,
                         "words_done": self.words_done, "elapsed_s": self.elapsed(),
                         "metrics_bytes": self.history.tell() if self.history is not None else None},
            # examples drawn ahead (_draw_ahead) and not begun are not in the checkpoint: the state before them
            "gen_state": (self.gen.get_state() if self.ahead is None else self.ahead[1]).cpu(),
            "chunk_gen_state": None if self.chunk_gen_state is None else self.chunk_gen_state.cpu(),
            "loss": self.loss_sum,
            "epoch_loss": float(self.epoch_loss), "epoch_examples": self.epoch_examples,
            "last_epoch_loss": self.last_epoch_loss,
        }

    def state(self, tensors: dict[str, torch.Tensor] | None = None) -> dict:
        tensors = self.tensors() if tensors is None else tensors
        return {"format": 2, "config": dataclasses.asdict(self.cfg),
                **{k: t.detach().cpu() for k, t in tensors.items()}, **self.position_state()}

    def load_state(self, st: dict) -> None:
        for name, t in self.tensors().items():
            t.copy_(st[name])
        pos = st["position"]
        self.epoch, self.chunk, self.batch, self.step = pos["epoch"], pos["chunk"], pos["batch"], pos["step"]
        self.piece = pos.get("piece", 0)
        if self.pieces is not None and "piece" not in pos:  # a checkpoint of the chunk loop: its chunk's first piece
            self.piece = self.pieces.piece_at(self.chunk, self.cfg.chunk_tokens)
        self.words_done = pos["words_done"]
        self.elapsed_before = pos.get("elapsed_s", 0.0)
        self.gen.set_state(st["gen_state"])
        self.chunk_gen_state = st["chunk_gen_state"]
        self.loss_sum = st.get("loss", 0.0)
        self.epoch_loss.fill_(st.get("epoch_loss", 0.0))  # checkpoints before 0.3 have no sums: the epoch's rest
        self.epoch_examples = st.get("epoch_examples", 0)
        self.last_epoch_loss = st.get("last_epoch_loss")
        self.lr = self.rate(self.words_done)
        self.saved = pos

    def save(self) -> None:
        st = self.state() if self.replicas is None else self.replicas.checkpoint()
        if st is not None:  # None: a distributed run's rank other than 0, for which rank 0 writes
            rundir.save_checkpoint(st, self.run_dir)
            self.saved = st["position"]

    def keyed_vectors(self):
        from . import export  # gensim: a second to import, in every process of a torchrun job, needed at the end

        return export.to_keyed_vectors(self.vocab.words, self.vocab.counts, self.model.input.detach().cpu().numpy())

    def save_vectors(self) -> None:
        from . import export

        export.write_kv(self.vocab.words, self.vocab.counts, self.model.input.detach().cpu().numpy(),
                        self.run_dir / rundir.VECTORS)


class Diverged(W2VError):
    def __init__(self, step: int, lr: float, summed_batch: int = 0, largest: int = 16384):
        # the PyTorch step sums a batch's gradients: at 65,536 examples skip-gram diverged at any usual rate
        fix = (f"retry with --batch-size {largest} or less, or a lower --lr"
               if summed_batch > largest else "retry with a lower --lr")
        super().__init__(f"training diverged: the loss became NaN or infinite at step {step} (learning rate "
                         f"{lr:.3g}); the last good checkpoint (the last epoch end, or the start) is kept; {fix}")
        self.step = step


@dataclasses.dataclass
class Summary:
    run_dir: Path
    words: int  # corpus tokens the whole run trained on, every epoch (earlier processes of a resumed run too)
    seconds: float  # training only: the vocabulary pass, checkpoints, vectors and scoring are apart
    words_per_s: float  # words_here / seconds
    loss: float  # the last epoch's mean loss per example
    vocab_size: int
    vocab_seconds: float
    examples: int = 0  # (centre, context) pairs for sg, centre words for cbow
    gpu_peak_mib: float | None = None  # peak GPU memory allocated by training, on CUDA
    write_seconds: float = 0.0  # checkpoints, vectors and metrics.jsonl
    score_seconds: float = 0.0  # the scores of --eval-epochs
    batch_size: int = 0  # examples per call of the step (backends.plan)
    words_here: int = 0  # the words this process trained: all of them, or after a resume the rest


def prepare(cfg: Config, corpus, run_dir: Path, progress: bool = False, world_size: int = 1,
            prior: vocab_mod.Vocab | None = None, init: Path | None = None,
            facts: dict | None = None) -> tuple[vocab_mod.Vocab, dict]:
    """Create the run directory (marked INCOMPLETE) with config.toml, vocab.tsv and corpus.ids. `corpus`: a path or
    a list of paths; `prior` and `init`: the vocabulary of the run it continues (--init) and that run; `facts`: what
    the caller knows of the run for config.toml's [run] table (the settings --init took, the files skipped)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / INCOMPLETE).write_text(f"training has not finished; resume with: {rundir.resume_command(run_dir)}\n")
    except OSError as e:
        raise storage_error("write", run_dir, e, "choose another --out") from None
    paths = [Path(p) for p in corpus] if isinstance(corpus, (list, tuple)) else [Path(corpus)]
    name = describe(paths)
    # then the vocabulary pass reads the phrased text
    joined = phrases.for_run(cfg, paths, run_dir, progress) if cfg.phrases else None
    text = [run_dir / phrases.RUN_TEXT] if joined else paths
    try:
        with reading_bar(text, "vocabulary", progress) as bar:
            vocab, stats = vocab_mod.build(text, run_dir / rundir.IDS, cfg.min_count, cfg.max_vocab, cfg.lowercase,
                                           cfg.encoding_errors, progress=lambda read: bar.update(read - bar.n),
                                           prior=prior, memory=parse_size(cfg.vocab_memory))
    except W2VError as e:
        if joined and str(text[0]) in str(e):  # the phrased text goes: name the corpus
            raise W2VError(str(e).replace(str(text[0]), f"{name} (its phrases joined)"), e.code) from None
        raise
    finally:
        if joined:
            (run_dir / phrases.RUN_TEXT).unlink(missing_ok=True)
    if joined:
        stats["replaced_bytes"] = joined.pop("replaced_bytes")  # the phrase pass read the corpus
    if stats["kept_tokens"] < 2 * cfg.window + 1:
        raise W2VError(f"corpus {name} has only {stats['kept_tokens']} tokens in the vocabulary, fewer than one "
                       f"window ({2 * cfg.window + 1} with --window {cfg.window}); give more text or lower --window")
    vocab.save(run_dir / rundir.VOCAB)
    # the API's sentences are removed once encoded: the corpus is where they came from
    where = ["(sentences)" if p.name == rundir.SENTENCES and p.parent == run_dir else str(p.resolve()) for p in paths]
    info = {"corpus": where[0] if len(where) == 1 else where, "tokens": stats["tokens"],
            "kept_tokens": stats["kept_tokens"], "vocab_size": len(vocab), "ids": stats["ids"],
            "vocab_seconds": round(stats["seconds"], 3), "replaced_bytes": stats["replaced_bytes"],
            "world_size": world_size, "vocab_passes": stats["passes"], **(joined or {})}
    if init is not None:  # where the run started from (continued training), and what it took from there
        info["init"] = str(Path(init).resolve())
    info.update(facts or {})
    if world_size > 1:  # the synchronisations' gain, and each process's learning rate in multiples of lr
        info["gain"], info["lr_scale"] = rule(cfg.sync_gain, world_size)
    with atomic_path(run_dir / rundir.CONFIG) as tmp:
        tmp.write_text(to_toml(cfg, {"run": info}), encoding="utf-8")
    return vocab, info


class _Signals:
    """SIGINT / SIGTERM: abort at once while preparing (nothing worth saving yet); during training only
    set a flag, so the loop stops at a batch boundary, a consistent point to checkpoint."""

    def __init__(self):
        self.signum, self.training = None, False

    def __call__(self, signum, frame):
        self.signum = signum
        if not self.training:
            raise KeyboardInterrupt

    @property
    def code(self) -> int:
        return 143 if self.signum == signal.SIGTERM else 130

    def __enter__(self):
        main = threading.current_thread() is threading.main_thread()
        self.old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


@dataclasses.dataclass
class Hooks:
    """What the caller is told, in its own thread (the loop's): one-line messages (`log`: the CLI prints them), each
    progress row of metrics.jsonl and each epoch's (the API's callbacks, w2v_nce.train). A callback that returns
    False, or raises, stops training at the next batch with a checkpoint, resumably; its exception is kept in
    `error`, for the caller to raise once the checkpoint is written."""
    log: Callable = print
    on_progress: Callable | None = None  # (row) -> False to stop
    on_epoch: Callable | None = None  # (epoch, row) -> False to stop
    error: BaseException | None = None  # what a callback raised
    stopped: bool = False  # a callback returned False
    trainer: Trainer | None = None  # the run being trained, once it is (for the callbacks)
    run_dir: Path | None = None

    def call(self, trainer: Trainer, fn: Callable | None, *args) -> None:
        if fn is None or trainer.stop_asked:
            return
        try:
            if fn(*args) is False:
                self.stopped = trainer.stop_asked = True
        except Exception as e:
            self.error, trainer.stop_asked = e, True


def train(cfg: Config | None, corpus, run_dir: Path | None = None, resume: bool = False,
          progress: bool = True, log=print, timeout: float | None = None, init: Path | None = None,
          hooks: Hooks | None = None, facts: dict | None = None) -> Summary:
    """Train a model into a run directory; with resume=True continue the interrupted run in run_dir. `corpus`: a
    path or a list of paths; `init`: a finished run to continue from (its vocabulary grows by the corpus's words);
    `facts`: more for config.toml's [run] table (prepare).

    Launched by torchrun with 2 or more processes, they train it together; `timeout` (seconds) then bounds
    their collectives (default: cfg.sync_timeout, or Config's on a resume, whose config only rank 0 reads)."""
    hooks = hooks or Hooks(log)
    world = distributed.from_env()
    if world is None:
        return _train(None, cfg, corpus, run_dir, resume, progress, hooks, timeout, (init, facts))
    if init is not None:
        raise UsageError("--init continues a run in one process; run it without torchrun")
    if world.rank:
        progress, hooks = False, Hooks(lambda *_: None)  # rank 0 speaks for the job
    done = False
    try:
        world.join(timeout or (cfg or Config()).sync_timeout)
        summary = _train(world, cfg, corpus, run_dir, resume, progress, hooks, timeout)
        done = True
    except KeyboardInterrupt as e:
        if not isinstance(e, Interrupted):  # rank 0 before it has shared its run (the others wait, signals deferred)
            e = Interrupted("interrupted before training started", code=130)
        world.abort(e)
        raise e from None
    except BaseException as e:
        world.abort(e)  # the other ranks stop at their next synchronisation, not at --sync-timeout
        raise
    finally:
        world.leave(done)
    return summary


@dataclasses.dataclass
class _Run:
    """One run on its way through _train: what the corpus and the run directory gave, and the plan."""
    cfg: Config
    run_dir: Path
    plan: backends.Plan | None = None
    vocab: vocab_mod.Vocab | None = None
    info: dict | None = None
    state: dict | None = None  # the checkpoint a resume continues from
    ids: np.ndarray | None = None
    resume: bool = False
    created: bool = False  # the run directory is this process's: removed if training never starts
    write_s: float = 0.0  # checkpoints, vectors and metrics.jsonl
    score_s: float = 0.0  # --eval-epochs


def _train(world, cfg, corpus, run_dir, resume, progress, hooks, timeout=None, init=(None, None)) -> Summary:
    init, facts = init
    rank = world.rank if world is not None else 0
    with _Signals() as sig, contextlib.ExitStack() as held:  # held: rank 0's lock on the run directory
        # The ranks of a distributed run stop together, at a synchronisation, so a signal only sets the flag once
        # rank 0 has read the corpus: when torchrun stops the others because one died, the meetings before
        # training name the dead rank rather than report an interruption.
        sig.training = rank > 0
        run = _open(world, cfg, corpus, run_dir, resume, progress, hooks.log, sig, (init, facts), held) \
            if rank == 0 else _Run(cfg, run_dir, resume=resume)
        trainer, replicas = _start(world, run, hooks, timeout, init)
        start_words = trainer.global_words()
        _loop(trainer, replicas, run, sig, hooks, progress)
        if rank == 0:
            _finish(trainer, run)
            if trainer.last_row is not None:  # the last epoch's, once the run is written
                hooks.call(trainer, hooks.on_epoch, trainer.epoch, trainer.last_row)
    return _summary(trainer, replicas, run, start_words, hooks.log)


def _open(world, cfg, corpus, run_dir, resume, progress, log, sig, init, held: contextlib.ExitStack) -> _Run:
    """Rank 0: the run directory made (the vocabulary, corpus.ids, config.toml) or reopened for a resume, its lock
    taken first (held to the end of `held`). `init`: (the run --init continues, prepare's facts)."""
    init, facts = init
    run_dir = Path(run_dir) if run_dir else None
    if not resume and world is not None and world.attempt > 0 and run_dir is not None \
            and rundir.interrupted(run_dir) and (run_dir / CHECKPOINT).exists():
        log(f"restart {world.attempt} of the torchrun job: resuming {run_dir}")
        resume = True
    if resume:
        if run_dir is None or not run_dir.is_dir():
            raise UsageError(f"cannot resume {run_dir}: not a directory")
        try:
            held.enter_context(rundir.hold(run_dir, "wait for it to finish, or stop it and then run this again"))
        except StorageError as e:  # the lock file cannot be made there (read-only): nor can a checkpoint
            raise StorageError(f"{e}, then continue with: {_resume_command(world, run_dir)}", e.errno,
                               e.path) from None
        cfg, vocab, info, state = _open_for_resume(run_dir, world)
        run = _Run(cfg, run_dir, backends.plan(cfg), vocab, info, state, resume=True)
    else:
        first = Path(corpus[0] if isinstance(corpus, (list, tuple)) else corpus)
        plan = backends.plan(cfg)  # usage errors before any work
        if cfg.epochs == 0 and init is None:
            raise UsageError("--epochs 0 trains nothing; it is for --init RUN (RUN's vectors, with the new words')")
        prior = _prior(init, cfg) if init is not None else None
        if run_dir is None:  # made here: a run started at the same moment takes the next name
            run_dir, created = rundir.default_run_dir(first, cfg, make=True), True
        else:
            _vacant(run_dir)
            created = not run_dir.exists()
        try:
            held.enter_context(rundir.hold(run_dir, "pass another --out (out=)"))
            _vacant(run_dir)  # another process may have filled it since
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()  # only if empty: a directory another process has begun is left to it
            raise
        # config.toml records the step's batch and shared noise
        run = _Run(dataclasses.replace(cfg, batch_size=plan.batch_size, shared_noise=plan.share), run_dir, plan,
                   created=created)
        try:
            run.vocab, run.info = prepare(run.cfg, corpus, run_dir, progress, world.size if world else 1, prior,
                                          init, facts)
        except BaseException as e:
            if run.created:  # nothing is left of a run that never started
                shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted("interrupted while building the vocabulary; nothing was kept",
                                  code=sig.code) from None
            raise
        info = run.info
        log(f"vocabulary: {len(run.vocab):,} words from {info['tokens']:,} tokens in {info['vocab_seconds']:.1f} s"
            + (f" ({info['replaced_bytes']:,} invalid byte{'s' if info['replaced_bytes'] > 1 else ''} replaced by "
               "U+FFFD)" if info["replaced_bytes"] else "")
            + (f" (two passes: its distinct words outgrew --vocab-memory {run.cfg.vocab_memory} and were counted "
               "in parts on disk; the same vocabulary)" if info.get("vocab_passes", 1) > 1 else "")
            + (f", after {run.cfg.phrases} phrase passes ({info['phrases_joined']:,} pairs joined in "
               f"{info['phrase_seconds']:.1f} s)" if run.cfg.phrases else "")
            + (f"; {len(run.vocab) - len(prior):,} new words beside the {len(prior):,} of {init}" if prior else ""))
        if info["tokens"] < SMALL_CORPUS:
            log(f"note: {info['tokens']:,} words is little text for word vectors: on the analogies sg-neg scored 2.8% on "
                "0.84M words and 36% on the 16.9M-word benchmark corpus (BENCHMARKS.md section 8)")
    # a resumed run's ids are checked against the vocabulary: an id outside it would crash the kernel
    run.ids = rundir.open_ids(run.run_dir, run.info.get("ids"), len(run.vocab), check_range=run.resume)
    return run


def _vacant(run_dir: Path) -> None:
    if rundir.occupied(run_dir):
        raise UsageError(f"run directory {run_dir} already exists and is not empty; pass another --out (out=) or "
                         "--resume it (resume=True)")


def _start(world, run: _Run, hooks: Hooks, timeout, init) -> tuple[Trainer, Replicas | None]:
    """Every rank: the trainer (and the replicas' wiring), up to the first checkpoint."""
    rank = world.rank if world is not None else 0
    trainer = None
    try:
        if world is not None:  # every rank gets rank 0's run and its own shard of the corpus
            _join(world, run, hooks.log, timeout)
        if run.plan.note:
            hooks.log(run.plan.note)
        cfg = run.cfg
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        trainer = Trainer(cfg, run.run_dir, run.vocab, run.plan, run.ids, rank, hooks.log, single=world is None)
        hooks.trainer, hooks.run_dir = trainer, run.run_dir
        trainer.resume_cmd = _resume_command(world, run.run_dir)
        replicas = Replicas(world, trainer) if world is not None else None  # the ranks meet: all came up
        epoch_words = trainer.global_total // cfg.epochs if cfg.epochs else 0
        trainer.token_scale = run.info.get("tokens", epoch_words) / max(epoch_words, 1)
        if run.resume:
            trainer.load_state(run.state if world is None else {**run.state, **run.state["ranks"][rank]})
            if replicas is not None:
                replicas.restore(run.state)
        elif init is not None:
            hooks.log(carry(trainer, init))
        t = time.perf_counter()
        if rank == 0:
            keep = run.state["position"].get("metrics_bytes") if run.resume else None
            trainer.history = History(run.run_dir, keep)
            trainer.record("resume" if run.resume else "start", time=rundir.now())
        if replicas is not None:  # every rank's position, for rank 0's checkpoints
            replicas.sync(combine_params=False)
        if not run.resume:  # the first good state; and a disk too small for a checkpoint fails now, not in an hour
            trainer.save()
        run.write_s += time.perf_counter() - t
    except BaseException as e:
        if run.created and not (run.run_dir / CHECKPOINT).exists():  # nothing is left of a run that never started
            shutil.rmtree(run.run_dir, ignore_errors=True)
        if isinstance(e, (distributed.PeerLost, distributed.PeerFailed)):
            raise _lost(e, trainer, _resume_command(world, run.run_dir) if run.resume else None) from None
        if isinstance(e, StorageError) and run.resume:
            raise StorageError(f"{e}, then continue with: {trainer.resume_cmd}", e.errno, e.path) from None
        raise
    trainer.on_progress = hooks.on_progress and (lambda row: hooks.call(trainer, hooks.on_progress, row))
    return trainer, replicas


def _join(world, run: _Run, log, timeout) -> None:
    """A distributed run's ranks: rank 0's run shared with every rank, each its shard, device and threads."""
    rank = world.rank
    (run.cfg, run.vocab, run.info, run.state, run.run_dir, run.ids,
     run.resume) = _share(world, run.cfg, run.vocab if rank == 0 else None, run.info if rank == 0 else None,
                          run.state if rank == 0 and run.resume else None, run.run_dir,
                          run.ids if rank == 0 else None, run.resume)
    plan = backends.plan(run.cfg)
    run.plan = dataclasses.replace(plan, device=world.place(plan.device))
    run.cfg = dataclasses.replace(run.cfg, threads=world.threads(run.cfg.threads),  # this process's share of cores
                                  sync_timeout=timeout or run.cfg.sync_timeout)  # a resume's flag wins
    world.patience(run.cfg.sync_timeout)
    if rank == 0 and isinstance(run.cfg.sync_gain, float) and run.cfg.sync_gain > SAFE_GAIN:
        log(f"--sync-gain {run.cfg.sync_gain:g} carries a row the replicas each settled past its mirror "
            f"image, which can grow: expect divergence (auto never goes above {SAFE_GAIN:g})")


def _loop(trainer: Trainer, replicas, run: _Run, sig, hooks: Hooks, progress: bool) -> None:
    """The epochs, with what stops them: a signal, a callback, a failed write, another rank."""
    cfg, rank = trainer.cfg, trainer.rank

    def stop() -> bool:
        """Before each batch: a single process stops when asked; the ranks of a distributed run synchronise
        when it is due or when one is asked to stop, and stop together when any was."""
        if replicas is None:
            return sig.signum is not None or trainer.stop_asked
        if sig.signum is None and not replicas.due():
            return False
        agreed = replicas.sync(int(sig.signum or 0))
        sig.signum = sig.signum or agreed or None
        return bool(agreed)

    def epoch_end():
        agreed = 0
        if replicas is not None:  # the epoch's last synchronisation, training time (the ranks wait there)
            trainer._since = time.perf_counter()
            agreed = replicas.catch_up(int(sig.signum or 0))
            trainer._pause()
        scores = {}
        if cfg.eval_epochs and rank == 0:
            from .evaluate import scores as score
            t = time.perf_counter()
            scores = score(trainer.keyed_vectors())
            run.score_s += time.perf_counter() - t
        t = time.perf_counter()
        mean = trainer.end_epoch_loss()
        trainer.last_row = trainer.record("epoch", **({"loss": mean} if mean is not None else {}), **scores)
        if trainer.epoch < cfg.epochs:  # the last good state (the last epoch's is saved below)
            trainer.save()
            hooks.call(trainer, hooks.on_epoch, trainer.epoch, trainer.last_row)
        run.write_s += time.perf_counter() - t
        if agreed and trainer.epoch < cfg.epochs:
            sig.signum = sig.signum or agreed
            raise KeyboardInterrupt

    bar = tqdm(total=trainer.global_total * trainer.token_scale, unit="w", unit_scale=True, dynamic_ncols=True,
               disable=not progress, desc=f"{cfg.model}-{cfg.loss}",
               initial=int(trainer.global_words() * trainer.token_scale))
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    sig.training = True
    try:
        trainer.run(bar, stop=stop, on_epoch_end=epoch_end)
        if replicas is not None:
            replicas.finish()
    except KeyboardInterrupt:
        where = f"in epoch {trainer.epoch + 1} at step {trainer.step}"
        why = "interrupted" if sig.signum is not None or replicas is not None else "stopped by a callback"
        e = _stopped(trainer, f"{why} {where}", sig.code)
        e.quiet = rank != 0  # every rank stops at the same synchronisation: rank 0 says so
        raise e from None
    except StorageError as e:
        raise _stopped(trainer, f"training stopped in epoch {trainer.epoch + 1} at step {trainer.step}: {e}",
                       1, failed=e) from None
    except (distributed.PeerLost, distributed.PeerFailed) as e:
        raise _lost(e, trainer, trainer.resume_cmd) from None
    finally:
        bar.close()


def _finish(trainer: Trainer, run: _Run) -> None:
    """Rank 0: the last checkpoint, the vectors, and the run marked finished."""
    t = time.perf_counter()
    try:
        trainer.save()
        trainer.save_vectors()
        trainer.history.close()
        (run.run_dir / INCOMPLETE).unlink(missing_ok=True)
        if not trainer.cfg.keep_corpus:  # the finished run needs it no more (--keep-corpus keeps it)
            trainer.ids = None  # its memory map first
            (run.run_dir / rundir.IDS).unlink(missing_ok=True)
    except (StorageError, OSError) as e:
        e = e if isinstance(e, StorageError) else storage_error("write", run.run_dir / INCOMPLETE, e)
        raise StorageError(f"training finished, but {e}, then write the result with: "
                           f"{trainer.resume_cmd}", e.errno, e.path) from None
    rundir.point_latest(run.run_dir)
    run.write_s += time.perf_counter() - t


def _summary(trainer: Trainer, replicas, run: _Run, start_words: float, log) -> Summary:
    """The run's figures, and its one-line report. Words are corpus tokens (rare words dropped by --min-count
    included), as gensim and word2vec.c count them: the whole run's, and this process's (after a resume, the rest)."""
    seconds, scale = trainer.seconds, trainer.token_scale
    words = trainer.global_total * scale
    here = (trainer.global_total - start_words) * scale
    device = trainer.device
    gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    vocab_s = run.info.get("vocab_seconds", 0.0) if not run.resume else 0.0
    loss = trainer.last_epoch_loss if trainer.last_epoch_loss is not None else trainer.loss_sum
    summary = Summary(run.run_dir, int(words), seconds, here / max(seconds, 1e-9), loss, len(trainer.vocab),
                      vocab_s, trainer.examples_done, gpu_mib, run.write_s, run.score_s, trainer.plan.batch_size,
                      int(here))
    gpu = f", peak GPU memory {gpu_mib:,.0f} MiB" if gpu_mib is not None else ""
    synced = f"; {replicas.summary()}" if replicas is not None else ""
    resumed = f" ({summary.words_here:,} of them in this process, after the resume)" if run.resume else ""
    compiled = f"compiling the step {trainer.compile_s:.1f} s, " if trainer.compile_s >= 0.5 else ""
    if trainer.cfg.epochs == 0:  # --init RUN --epochs 0: nothing trained, so no loss to report
        log(f"trained nothing (--epochs 0): the vectors of {run.info.get('init', 'the earlier run')} with the new "
            f"words' as a new run starts them; time: vocabulary {vocab_s:.1f} s, writing {run.write_s:.1f} s")
    else:
        log(f"trained {summary.words:,} words{resumed} in {seconds:.1f} s ({summary.words_per_s:,.0f} words/s), "
            f"final loss {summary.loss:.4f} (the last epoch's mean){gpu}; time: vocabulary {vocab_s:.1f} s, "
            f"{compiled}training {seconds:.1f} s, writing {run.write_s:.1f} s"
            + (f", scoring {run.score_s:.1f} s" if trainer.cfg.eval_epochs else "") + synced)
    log(f"vectors: {run.run_dir / rundir.VECTORS} (runs/latest points at {run.run_dir})")
    return summary


def _share(world, cfg, vocab, info, state, run_dir, ids, resume):
    """Rank 0's run on every rank (distributed.share): the config, vocabulary, [run] facts, a resumed run's
    checkpoint, and each rank's shard of the encoded corpus."""
    payload, tensors = None, {}
    if world.rank == 0:
        payload = {"config": dataclasses.asdict(cfg), "words": vocab.words, "counts": vocab.counts, "info": info,
                   "run_dir": str(run_dir), "resume": resume}
        if resume:
            tensors = {k: state[k] for k in rundir.TENSORS}
            payload["state"] = {k: v for k, v in state.items() if k not in tensors}
    payload, tensors, shard = distributed.share(world, payload, tensors, ids)
    state = {**payload["state"], **tensors} if payload["resume"] else None
    return (Config(**payload["config"]), vocab_mod.Vocab(payload["words"], payload["counts"]), payload["info"],
            state, Path(payload["run_dir"]), shard, payload["resume"])


def _stopped(trainer: Trainer, what: str, code: int, failed: StorageError | None = None) -> Interrupted:
    """Checkpoint a run that stopped early (unless writing the checkpoint is what failed); the error says
    what is kept and how to continue."""
    resume = trainer.resume_cmd
    try:
        if failed is not None and Path(failed.path or "").name == CHECKPOINT:
            raise failed
        trainer.save()
    except StorageError as e:
        kept = f"continue from the checkpoint at {rundir.describe_position(trainer.saved)} with: {resume}"
        if e is failed:  # `what` has said why
            return Interrupted(f"{what}, then {kept}", code=code)
        if failed is not None and e.errno == failed.errno:  # the same cause: say it once
            return Interrupted(f"{what} (the checkpoint could not be saved either), then {kept}", code=code)
        return Interrupted(f"{what}; {e}, then {kept}", code=code)
    return Interrupted(f"{what}; checkpoint saved; continue with: {resume}", code=code)


def _lost(e: W2VError, trainer: Trainer | None, resume_cmd: str | None) -> W2VError:
    """Another rank stopped: rank 0 checkpoints the last synchronisation (the same everywhere); the error says
    what is kept and how to continue (resume_cmd None: nothing, the run never started)."""
    if resume_cmd is None:
        kept = "; nothing was kept"
    else:
        where = "its last checkpoint"
        try:
            if trainer is not None:
                trainer.save()
                where = f"its checkpoint at {rundir.describe_position(trainer.saved)}" if trainer.saved else where
        except StorageError as s:
            where = f"its last checkpoint ({s})"
        kept = f"; the run is INCOMPLETE with {where}; resume it with: {resume_cmd}"
    err = W2VError(f"{e}{kept}", e.code)
    err.quiet = e.quiet
    return err


def _resume_command(world: distributed.World | None, run_dir) -> str:
    return distributed.resume_command(run_dir, world.size if world else 1, world.local_size if world else None)


def _open_for_resume(run_dir: Path | None, world: distributed.World | None = None):
    """An interrupted run's config, vocabulary, [run] facts and checkpoint, each checked; a distributed run
    continues only with as many processes (each rank continues its own shard and random stream)."""
    if not (run_dir / INCOMPLETE).exists():
        if (run_dir / rundir.VECTORS).exists():
            raise UsageError(f"{run_dir} is a finished run; there is nothing to resume")
        raise UsageError(f"cannot resume {run_dir}: it is not a run directory written by `w2v-nce train`")
    cfg, info = rundir.read_config(run_dir)
    size, here = info.get("world_size", 1), world.size if world is not None else 1
    if size != here:
        how = distributed.resume_command(run_dir, size)
        raise UsageError(f"{run_dir} was trained by {size} process{'es' if size > 1 else ''} and this job has "
                         f"{here}; resume it with {size}: {how}")
    vocab = rundir.read_vocab(run_dir, info.get("vocab_size"))
    if not (run_dir / CHECKPOINT).exists():
        raise W2VError(f"nothing to resume in {run_dir}: it has no {CHECKPOINT} (training never started, or the "
                       "file was lost); start a new run instead")
    state = rundir.load_checkpoint(run_dir, len(vocab), cfg.dim, cfg.loss)
    if size > 1 and len(state.get("ranks", [])) != size:
        raise rundir.damaged(run_dir / CHECKPOINT, f"it holds the positions of {len(state.get('ranks', []))} "
                             f"ranks where the run has {size}")
    return cfg, vocab, info, state
