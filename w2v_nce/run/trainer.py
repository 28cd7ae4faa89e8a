"""The trainer: a run's training state (the model, the corpus's chunks, the random stream, the losses, the position
in the epochs), checkpointed at any step and resumed exactly. Its epochs go by pieces or by chunks (loops.py)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import loops, rundir, vectors
from .rundir import History
from ..config import Config
from ..corpus import subwords, vocab as vocab_mod
from ..errors import W2VError
from ..model.heads import make_head
from ..model.sampling import AliasSampler, keep_probs
from ..model.word2vec import Word2Vec, input_slots
from ..step import pieces
from ..step.plan import Plan, largest_summed_batch

def lr_at(cfg: Config, words_done: float, total_words: float) -> float:
    """word2vec's linear decay from lr to lr * min_lr_ratio over all epochs."""
    return cfg.lr * max(cfg.min_lr_ratio, 1.0 - words_done / (total_words + 1))


class Trainer:
    """Holds the training state, so that a run can be checkpointed at any batch and resumed exactly."""

    def __init__(self, cfg: Config, run_dir: Path, vocab: vocab_mod.Vocab, plan: Plan,
                 ids: np.ndarray | None = None, rank: int = 0, log=lambda *_: None, single: bool = True):
        self.cfg, self.run_dir, self.vocab, self.plan, self.rank = cfg, run_dir, vocab, plan, rank
        self.device = plan.device
        self.ids = rundir.open_ids(run_dir, None, len(vocab)) if ids is None else ids
        self._measure()
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(cfg.seed + rank)  # each rank of a distributed run its own stream
        self.model = self._model()
        self.keep = torch.as_tensor(keep_probs(vocab.counts, cfg.sample), dtype=torch.float32, device=self.device)
        t = time.perf_counter()
        self.loop = self._warm(log, single)
        self.compile_s = time.perf_counter() - t
        self._position()
        self._progress()

    def _measure(self) -> None:
        """The chunks' first tokens, their words (line breaks excluded), and the words of an epoch and of the run."""
        cfg, ids = self.cfg, self.ids
        self.starts = list(range(0, len(ids), cfg.chunk_tokens)) or [0]
        seps = [int(np.count_nonzero(ids[s:s + cfg.chunk_tokens] == vocab_mod.SEPARATOR)) for s in self.starts]
        self.chunk_words = [min(cfg.chunk_tokens, len(ids) - s) - n for s, n in zip(self.starts, seps)]
        self.epoch_words = sum(self.chunk_words)
        self.total_words = self.epoch_words * cfg.epochs

    def _model(self) -> Word2Vec:
        """The model at its start: the same on every rank of a distributed run (one seed)."""
        cfg, counts = self.cfg, self.vocab.counts
        sampler = AliasSampler(counts, cfg.noise_power, self.device)
        head = make_head(cfg.loss, counts, cfg.dim, sampler, cfg.negatives)
        lengths, subs, self.bucket_ids = cfg.subword_lengths(), None, np.zeros(0, np.int64)
        if lengths is not None:  # the n-gram rows of the buckets the vocabulary uses (subwords.run_table)
            offsets, rows, self.bucket_ids = subwords.run_table(self.vocab.words, lengths, cfg.buckets, cfg.jamo)
            subs = (torch.from_numpy(offsets), torch.from_numpy(rows))
        return Word2Vec(len(counts), cfg.dim, cfg.model, head, torch.Generator().manual_seed(cfg.seed), subs,
                        len(self.bucket_ids)).to(self.device)

    def _warm(self, log, single: bool) -> loops.Pieces | loops.Chunks:
        """The step compiled (or loaded from numba's cache, a fraction of a second) and the epoch's loop: by pieces
        for one process on the CPU (single), by chunks otherwise. A first compile takes 20-25 s on 2 cores
        (a head and model at dim 100): the user is told why once it has lasted a second."""
        cfg = self.cfg
        # sg and cbow compile apart (update.Params.rows_in), so the message names the model too
        says = threading.Timer(1.0, log, (f"compiling the training step for --model {cfg.model} --loss {cfg.loss} at "
                                          f"--dim {cfg.dim}: once per installation (numba keeps it; later runs load "
                                          "it at once)",))
        says.daemon = True
        says.start()
        try:
            threads = cfg.threads or os.cpu_count() or 1
            in_pieces = single and self.plan.kernel == "fused" and self.device.type == "cpu"
            self.plan.warm(self.model.head, threads, input_slots(cfg.model, cfg.window), bool(cfg.subwords),
                           step=not in_pieces)
            if in_pieces:
                by_pieces = pieces.Threads(self.ids, self.keep.numpy(), self.model, self.plan, cfg, threads,
                                           cfg.seed + self.rank)
                by_pieces.warm_up()
                return loops.Pieces(self, by_pieces)
        finally:
            says.cancel()
        return loops.Chunks(self)

    def _position(self) -> None:
        """At the run's start: the next (epoch, chunk, batch), or (epoch, piece) by pieces; the generator's state at
        the chunk's start (None until its examples are drawn: a checkpoint can fall between drawing them and the
        first batch); the words trained; the epoch's summed loss (float64, on the device: no synchronisation a
        step) and examples."""
        self.epoch = self.chunk = self.batch = self.piece = self.step = 0
        self.chunk_gen_state = None
        self.words_done = 0.0
        self.examples_done = 0  # examples trained on by this process (pairs for sg, centre words for cbow)
        self.loss_sum = 0.0  # mean loss per example over the last reported steps (the progress bar)
        self.epoch_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.epoch_examples = 0
        self.last_epoch_loss: float | None = None  # the mean loss per example of the last finished epoch

    def _progress(self) -> None:
        """What the run's progress is measured by and reported to. The learning rate follows the run's progress:
        this process's, or in a distributed run (replicas.py) the words of all ranks at the last synchronisation
        plus this rank's since, times the ranks."""
        self.world, self.global_total, self.synced = 1, self.total_words, (0.0, 0.0)
        self.lr_scale = 1.0  # each replica's learning rate, in multiples of one process's (replicas.rule)
        self.replicas = None  # replicas.Replicas in a distributed run
        self.lr = lr_at(self.cfg, 0.0, self.total_words)
        self.stop_asked = False  # a callback returned False (or raised): stop at the next batch, resumably
        self.history: History | None = None  # metrics.jsonl, where train() opened it
        self.last_row: dict | None = None  # the last epoch's row of metrics.jsonl
        self.on_progress = None  # called with each progress row of metrics.jsonl (the API's callbacks)
        self.token_scale = 1.0  # corpus tokens per trained word: words/s counts tokens, as gensim does
        self.saved: dict | None = None  # the position of the checkpoint on disk
        self.resume_cmd = rundir.resume_command(self.run_dir)  # how to continue the run, for messages
        # training seconds: of earlier processes (from the checkpoint), of this one, and since when it runs
        self.elapsed_before, self.seconds, self._since = 0.0, 0.0, None
        self._start = (0.0, 0.0)  # (words_done, elapsed) when this process started training

    # -- the epochs -------------------------------------------------------------------------------
    def train_epochs(self, bar: tqdm | None = None, stop=lambda: False, on_epoch_end=lambda: None) -> None:
        """Train from the position to the last epoch's end. stop() is asked before each batch (each piece), and
        once true training stops with KeyboardInterrupt at a position a checkpoint holds; on_epoch_end() at each
        epoch's end (its checkpoint and scores, which are not training time)."""
        self._start = (self.global_words(), self.elapsed())
        self.clock()
        try:
            while self.epoch < self.cfg.epochs:
                self.loop.epoch(bar, stop)
                self.epoch += 1
                self.chunk = self.piece = 0
                self.pause()
                on_epoch_end()
                self.clock()
        finally:
            self.pause()

    def report(self, bar, pending: list, n_pending: int) -> None:
        """The steps' summed losses since the last report (Diverged if one is not finite): the bar, a progress
        row of metrics.jsonl and the progress callback."""
        if not pending:
            return
        losses = torch.stack(pending)  # (steps,)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise Diverged(self.step - len(pending) + first + 1, self.lr,
                           self.plan.batch_size if self.plan.kernel == "torch" else 0,
                           largest_summed_batch(self.cfg.loss))
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
    def clock(self) -> None:
        """Training time runs from now (the epoch's end is not training time, save its synchronisation)."""
        self._since = time.perf_counter()

    def pause(self) -> None:
        """Training time stops."""
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
                         "order": self.loop.order_at(self.epoch), "step": self.step,
                         "words_done": self.words_done, "elapsed_s": self.elapsed(),
                         "metrics_bytes": self.history.tell() if self.history is not None else None},
            # examples drawn ahead (Chunks.draw_next) and not begun are not in the checkpoint: the state before them
            "gen_state": (self.gen.get_state() if self.loop.ahead is None else self.loop.ahead[1]).cpu(),
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
        order = pos.get("order")  # what the place counts in (loops.Pieces.order_at); none before the shuffled order
        # a position by chunks goes on from its chunk's first piece (by chunks: from its chunk and batch)
        self.piece = pos["piece"] if "piece" in pos and order != "chunks" else self.loop.first_piece(self.chunk)
        self.loop.resume(order)
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

    def word_vectors(self) -> np.ndarray:
        """(V, D) float32: every word's input vector (with subwords the mean of its rows)."""
        return self.model.word_vectors().detach().cpu().numpy()

    def keyed_vectors(self):
        """gensim's KeyedVectors of the words, or with subwords its FastTextKeyedVectors (words never seen too)."""
        m, lengths = self.model, self.cfg.subword_lengths()
        if lengths is None:
            return vectors.to_keyed_vectors(self.vocab.words, self.vocab.counts, self.word_vectors())
        return vectors.to_fasttext_vectors(self.vocab.words, self.vocab.counts, m.input.detach().cpu().numpy(),
                                           m.sub_offsets.cpu().numpy(), m.sub_rows.cpu().numpy(), lengths,
                                           self.cfg.buckets, self.bucket_ids, self.cfg.jamo)

    def save_vectors(self) -> None:
        vectors.write_kv(self.vocab.words, self.vocab.counts, self.word_vectors(),
                        self.run_dir / rundir.VECTORS)


class Diverged(W2VError):
    def __init__(self, step: int, lr: float, summed_batch: int = 0, largest: int = 16384):
        # the PyTorch step sums a batch's gradients: at 65,536 examples skip-gram diverged at any usual rate
        fix = (f"retry with --batch-size {largest} or less, or a lower --lr"
               if summed_batch > largest else "retry with a lower --lr")
        super().__init__(f"training diverged: the loss became NaN or infinite at step {step} (learning rate "
                         f"{lr:.3g}); the last good checkpoint (the last epoch end, or the start) is kept; {fix}")
        self.step = step
