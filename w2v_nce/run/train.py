"""Training a run: corpus -> vocabulary -> examples -> SGD, into a run directory (its files: rundir.py), from the
first checkpoint to the vectors, with what stops it on the way.

A run is checkpointed when training starts, at every epoch end and when it is stopped (Ctrl-C, SIGTERM, a callback, a
failed write), and it appends its history to metrics.jsonl as it goes. Whatever stops it, the run directory keeps its
last good checkpoint and `train --resume` continues from there; only a finished run loses its INCOMPLETE mark and
becomes runs/latest.

Launched by torchrun with several processes, the same function trains one model with all of them: rank 0 opens the
run directory and sends the others their data (opening.py, distributed.py), and every rank runs the trainer's loop on
its shard while replicas.py keeps the copies of the model in step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from . import distributed, rundir
from .continued import carry
from .opening import Opened, given, open_run, resume_command, join_ranks
from .replicas import Replicas
from .rundir import CHECKPOINT, INCOMPLETE, History
from .trainer import Trainer
from ..config import Config
from ..step.plan import Plan
from ..errors import Interrupted, StorageError, UsageError, W2VError, storage_error


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
    batch_size: int = 0  # examples per call of the step (step.plan.make_plan)
    words_here: int = 0  # the words this process trained: all of them, or after a resume the rest


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
    # --eval-epochs' scores of KeyedVectors (the front doors give tools.evaluate.scores: the run does not import the
    # tools, which read runs)
    score: Callable | None = None

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
          hooks: Hooks | None = None, facts: dict | None = None, plan: Plan | None = None) -> Summary:
    """Train a model into a run directory; with resume=True continue the interrupted run in run_dir. `corpus`: a
    path or a list of paths; `init`: a finished run to continue from (its vocabulary grows by the corpus's words);
    `facts`: more for config.toml's [run] table (opening.make_run_dir); `plan`: the step, where the caller made it
    from cfg.

    Launched by torchrun with 2 or more processes, they train it together; `timeout` (seconds) then bounds
    their collectives (default: cfg.sync_timeout, or Config's on a resume, whose config only rank 0 reads)."""
    hooks = hooks or Hooks(log)
    if cfg is not None and cfg.eval_epochs and hooks.score is None:
        raise ValueError("--eval-epochs needs a Hooks.score (tools.evaluate.scores: the front doors give it)")
    world = distributed.from_env()
    if world is None:
        return _train(None, cfg, corpus, run_dir, resume, progress, hooks, timeout, init=init, facts=facts,
                      plan=plan)
    if init is not None:
        raise UsageError("--init continues a run in one process; run it without torchrun")
    if world.rank:
        progress, hooks = False, Hooks(lambda *_: None)  # rank 0 speaks for the job
    done = False
    try:
        world.join(timeout or (cfg or Config()).sync_timeout)
        summary = _train(world, cfg, corpus, run_dir, resume, progress, hooks, timeout, plan=plan)
        done = True
    except KeyboardInterrupt as e:
        if not isinstance(e, Interrupted):  # rank 0 before it has shared its run (the others wait, signals deferred)
            e = _not_started(None, 130)
        world.abort(e)
        raise e from None
    except BaseException as e:
        world.abort(e)  # the other ranks stop at their next synchronisation, not at --sync-timeout
        raise
    finally:
        world.leave(done)
    return summary


def _train(world, cfg, corpus, run_dir, resume, progress, hooks, timeout=None, init=None, facts=None,
           plan=None) -> Summary:
    rank = world.rank if world is not None else 0
    with _Signals() as sig, contextlib.ExitStack() as held:  # held: rank 0's lock on the run directory
        # The ranks of a distributed run stop together, at a synchronisation, so a signal only sets the flag once
        # rank 0 has read the corpus: when torchrun stops the others because one died, the meetings before
        # training name the dead rank rather than report an interruption.
        sig.training = rank > 0
        run = open_run(world, cfg, corpus, run_dir, resume, progress, hooks.log, sig, held, init, facts, plan) \
            if rank == 0 else Opened(cfg, run_dir, resume=resume, given=None if resume else given(corpus))
        try:
            trainer, replicas = _start(world, run, hooks, timeout, init)
        except KeyboardInterrupt as e:  # while the step compiled (20-25 s, the first time), or before
            if isinstance(e, Interrupted) or world is not None:  # train() says it for a distributed run
                raise
            raise _not_started(run, sig.code) from None
        start_words = trainer.global_words()
        _loop(trainer, replicas, run, sig, hooks, progress)
        if rank == 0:
            _finish(trainer, run)
            if trainer.last_row is not None:  # the last epoch's, once the run is written
                hooks.call(trainer, hooks.on_epoch, trainer.epoch, trainer.last_row)
    return _summary(trainer, replicas, run, start_words, hooks.log)


def _not_started(run: Opened | None, code: int) -> Interrupted:
    """The interruption before the first step: for one process what was kept (run), for a distributed run (None)
    rank 0's word before it has shared its run."""
    kept = "" if run is None else "; " + (f"the run is as it was; continue with: {resume_command(None, run.run_dir)}"
                                          if run.resume else "nothing was kept")
    return Interrupted(f"interrupted before training started{kept}", code=code)


def _start(world, run: Opened, hooks: Hooks, timeout, init) -> tuple[Trainer, Replicas | None]:
    """Every rank: the trainer (and the replicas' wiring), up to the first checkpoint."""
    rank = world.rank if world is not None else 0
    trainer = None
    try:
        if world is not None:  # every rank gets rank 0's run and its own shard of the corpus
            join_ranks(world, run, hooks.log, timeout)
        if run.plan.note:
            hooks.log(run.plan.note)
        cfg = run.cfg
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        trainer = Trainer(cfg, run.run_dir, run.vocab, run.plan, run.ids, rank, hooks.log, single=world is None)
        hooks.trainer, hooks.run_dir = trainer, run.run_dir
        trainer.resume_cmd = resume_command(world, run.run_dir)
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
            raise _lost(e, trainer, resume_command(world, run.run_dir) if run.resume else None) from None
        if isinstance(e, StorageError) and run.resume:
            raise StorageError(f"{e}, then continue with: {trainer.resume_cmd}", e.errno, e.path) from None
        raise
    trainer.on_progress = hooks.on_progress and (lambda row: hooks.call(trainer, hooks.on_progress, row))
    return trainer, replicas


def _loop(trainer: Trainer, replicas, run: Opened, sig, hooks: Hooks, progress: bool) -> None:
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

    bar = tqdm(total=trainer.global_total * trainer.token_scale, unit="w", unit_scale=True, dynamic_ncols=True,
               disable=not progress, desc=f"{cfg.model}-{cfg.loss}",
               initial=int(trainer.global_words() * trainer.token_scale))
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    sig.training = True
    try:
        trainer.train_epochs(bar, stop=stop, on_epoch_end=lambda: _epoch_end(trainer, replicas, run, sig, hooks))
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


def _epoch_end(trainer: Trainer, replicas, run: Opened, sig, hooks: Hooks) -> None:
    """An epoch's end: the ranks' last synchronisation of it, --eval-epochs' scores, the epoch's row of
    metrics.jsonl, its checkpoint and the on_epoch callback; a signal a rank heard during it stops training here."""
    cfg, rank = trainer.cfg, trainer.rank
    agreed = 0
    if replicas is not None:  # the epoch's last synchronisation, training time (the ranks wait there)
        trainer.clock()
        agreed = replicas.catch_up(int(sig.signum or 0))
        trainer.pause()
    scores = {}
    if cfg.eval_epochs and rank == 0:
        t = time.perf_counter()
        scores = hooks.score(trainer.keyed_vectors())
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


def _finish(trainer: Trainer, run: Opened) -> None:
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


def _summary(trainer: Trainer, replicas, run: Opened, start_words: float, log) -> Summary:
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
