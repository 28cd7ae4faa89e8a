"""The trainer's two ways through an epoch, each a class with the same methods (`epoch`; for checkpoints `order_at`,
and `first_piece` and `resume` at a resume):

- Pieces: one process on the CPU. Each thread takes the next piece of the corpus, in the epoch's shuffled order,
  and trains all of it compiled (step/pieces.py); the position is (epoch, place in that order).
- Chunks: several processes (torchrun), the GPU and the PyTorch step. Each chunk of the corpus is made into examples
  (corpus/examples.py) and trained a batch at a time; the position is (epoch, chunk, batch).

Both report to the trainer (Trainer.report) at REPORT_EVERY, after the first step and at each chunk's end.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..corpus.examples import cbow_examples, draw_windows, skipgram_pairs, split_lines, subsample
from ..model.word2vec import centre_input

REPORT_EVERY = 0.5  # seconds between progress reports (the bar, metrics.jsonl, the callbacks)


class Pending:
    """The summed losses and examples of the steps since the last report."""

    def __init__(self, trainer):
        self.trainer, self.losses, self.examples, self.last = trainer, [], 0, time.perf_counter()

    def add(self, loss, examples: int) -> None:
        """One step's summed loss (a 0-d tensor, left on the device: no synchronisation a step) and its examples."""
        t = self.trainer
        self.losses.append(loss)
        t.epoch_loss += loss
        t.examples_done += examples
        t.epoch_examples += examples
        self.examples += examples

    def report(self, bar, now: bool = False) -> None:
        """Report the pending steps when `now` or REPORT_EVERY has passed since the last report."""
        clock = time.perf_counter()
        if now or clock - self.last > REPORT_EVERY:
            self.last = clock
            self.trainer.report(bar, self.losses, self.examples)
            self.losses, self.examples = [], 0


class Pieces:
    """An epoch by pieces: the threads (step/pieces.py) train them; this thread reports them as they finish and
    stops them (a signal, a callback, a non-finite loss) at the pieces begun."""

    ahead = None  # nothing is drawn ahead of the position

    def __init__(self, trainer, threads):
        self.trainer, self.threads = trainer, threads
        self.in_file_order = None  # the epoch a checkpoint in the file's order was taken in, which goes on in it

    def first_piece(self, chunk: int) -> int:
        """The piece a checkpoint of the chunk loop at `chunk` continues from: that chunk's first (its epoch goes on in
        the file's order: resume)."""
        return self.threads.piece_at(chunk, self.trainer.cfg.chunk_tokens)

    def order_at(self, epoch: int) -> str:
        """What a checkpoint's place counts in: "shuffled", the epoch's order (pieces.Threads.arrange), or "file"."""
        return "file" if epoch == self.in_file_order else "shuffled"

    def resume(self, order: str | None) -> None:
        """A checkpoint whose place is not in the epoch's shuffled order (the file's order, the chunk loop's position,
        or none: a version before the shuffled order): its epoch goes on in the file's order, as it began."""
        if order != "shuffled":
            self.in_file_order = self.trainer.epoch

    def epoch(self, bar, stop) -> None:
        """Train the rest of the epoch; KeyboardInterrupt when stop() ended it early (every piece before
        trainer.piece trained)."""
        t, threads = self.trainer, self.threads
        pending = Pending(t)
        first_words = t.epoch * t.epoch_words

        def report(done, chunk_end: bool, quiet: bool = False) -> None:
            for _, loss, examples, words, lr in sorted(done):
                pending.add(torch.tensor(loss, dtype=torch.float64), examples)
                t.words_done += words
                t.step += 1
                t.lr = min(t.lr, lr)  # the rate of the latest piece done (the threads finish out of order)
            if not quiet:  # a non-finite loss is reported at once: report() stops training
                pending.report(bar, now=t.step == len(done) or chunk_end
                               or not all(math.isfinite(d[1]) for d in done))

        threads.arrange(t.epoch, shuffled=t.epoch != self.in_file_order)
        t.words_done = first_words + float(threads.before[t.piece])
        try:
            t.piece = threads.epoch(t.epoch, t.piece, lambda before: t.rate(first_words + before), stop, report)
        finally:  # the pieces done are the first ones, even when something stopped them
            t.piece = threads.done
            t.words_done = first_words + float(threads.before[t.piece])
        if t.piece < len(threads.bounds):
            raise KeyboardInterrupt  # stopped (a signal, a callback): the caller checkpoints


class Chunks:
    """An epoch by chunks, each chunk's examples drawn from trainer.gen. On a GPU the encoded corpus is copied to
    the device once (where it fits in an eighth of the free memory) and each chunk's examples are drawn during the
    last chunk's training, on a side stream."""

    def __init__(self, trainer):
        self.trainer = t = trainer
        self.ids_on_device = self._upload_ids()
        self.draw_ahead = t.device.type == "cuda"
        self.side = torch.cuda.Stream(t.device) if t.device.type == "cuda" else None
        self.ahead = None  # ((epoch, chunk), the generator's state before them, examples) drawn ahead

    def first_piece(self, chunk: int) -> int:
        return 0

    def order_at(self, epoch: int) -> str:
        return "chunks"  # a position (epoch, chunk, batch)

    def resume(self, order: str | None) -> None:
        pass

    def _upload_ids(self) -> torch.Tensor | None:
        """On a GPU, the encoded corpus as int32 on the device, or None where it would take more than an eighth of the
        free memory; copied a chunk at a time, so that the host holds no second copy."""
        t = self.trainer
        if t.device.type != "cuda" or t.ids.nbytes > torch.cuda.mem_get_info(t.device)[0] // 8:
            return None
        on = torch.empty(len(t.ids), dtype=torch.int32, device=t.device)
        for s in t.starts:
            on[s:s + t.cfg.chunk_tokens].copy_(torch.from_numpy(np.array(t.ids[s:s + t.cfg.chunk_tokens])))
        return on

    def examples(self, chunk: int):
        """All examples of one chunk as (inputs, targets, mask or None), drawn from the trainer's generator."""
        t, cfg = self.trainer, self.trainer.cfg
        s = t.starts[chunk]
        if self.ids_on_device is not None:
            ids = self.ids_on_device[s:s + cfg.chunk_tokens].long()
        else:
            ids = torch.from_numpy(np.asarray(t.ids[s:s + cfg.chunk_tokens], dtype=np.int64)).to(t.device)
        ids = subsample(ids, t.keep, t.gen)
        words, lines = split_lines(ids)
        eff = draw_windows(len(words), cfg.window, t.device, t.gen)
        if cfg.model == "sg":
            inputs, targets = skipgram_pairs(words, lines, eff, cfg.window, centre_input(cfg.model, cfg.subwords))
            return inputs, targets, None
        ctx, mask, centre = cbow_examples(words, lines, eff, cfg.window)
        return ctx, centre, mask

    def draw_next(self, chunk: int) -> None:
        """The examples of `chunk`, drawn now into self.ahead; on a GPU on the side stream, while the device still
        trains on the last chunk (the host does not wait for it). They are drawn at the same point of the
        generator's sequence as in line, and a checkpoint taken before they are used holds the state before them,
        so a run and its resume from any point are the same as without."""
        t = self.trainer
        state = t.gen.get_state()
        if self.side is None:  # the CPU (the tests): the same draws, in line
            examples = self.examples(chunk)
        else:
            main = torch.cuda.current_stream(t.device)
            with torch.cuda.stream(self.side):
                examples = self.examples(chunk)
            main.wait_stream(self.side)  # the next launches wait for them; those already queued do not
            for e in examples:
                if e is not None:
                    e.record_stream(main)  # their memory is not reused by the side stream while main reads it
        self.ahead = ((t.epoch, chunk), state, examples)

    def _chunk_examples(self):
        """The examples of the chunk at the position: drawn ahead, drawn now, or redrawn (a resume inside it)."""
        t = self.trainer
        if self.ahead is not None and self.ahead[0] == (t.epoch, t.chunk):
            _, t.chunk_gen_state, examples = self.ahead
            self.ahead = None
            return examples
        if t.chunk_gen_state is None:  # not drawn yet
            t.chunk_gen_state = t.gen.get_state()
            return self.examples(t.chunk)
        now = t.gen.get_state()  # resumed inside the chunk: the same examples, then the noise stream goes on
        t.gen.set_state(t.chunk_gen_state)
        examples = self.examples(t.chunk)
        t.gen.set_state(now)
        return examples

    def epoch(self, bar, stop) -> None:
        """Train the rest of the epoch; KeyboardInterrupt when stop() is true before a batch."""
        t = self.trainer
        pending = Pending(t)
        while t.chunk < len(t.starts):
            self._batches(self._chunk_examples(), pending, bar, stop)
            t.chunk += 1
            t.batch = 0
            t.chunk_gen_state = None

    def _batches(self, examples, pending: Pending, bar, stop) -> None:
        """The rest of one chunk's batches. Its examples are dropped before the next chunk's are drawn: two
        chunks' at once would raise the run's peak memory by half."""
        t = self.trainer
        inputs, targets, mask = examples
        size = t.plan.batch_size
        n = len(targets)
        n_batches = max(1, math.ceil(n / size))
        words_before = t.epoch * t.epoch_words + sum(t.chunk_words[:t.chunk])
        chunk_words = t.chunk_words[t.chunk]
        while t.batch < n_batches:
            if stop():
                raise KeyboardInterrupt
            sl = slice(t.batch * size, (t.batch + 1) * size)
            t.lr = t.rate(words_before + chunk_words * t.batch / n_batches)
            if n:
                loss = t.plan.step(t.model, inputs[sl], targets[sl], t.lr, None if mask is None else mask[sl], t.gen)
                pending.add(loss, len(targets[sl]))
            t.batch += 1
            t.step += 1
            t.words_done = words_before + chunk_words * t.batch / n_batches
            last = t.batch == n_batches
            if last and self.draw_ahead and t.chunk + 1 < len(t.starts):
                self.draw_next(t.chunk + 1)  # before the report waits for the device
            pending.report(bar, now=last or t.step == 1)  # a fast run's curve starts after its first step
