"""Opening a run: a new run's directory made (the vocabulary pass, corpus.ids, config.toml) or a stopped run's read
back for a resume, its lock taken first; under torchrun, rank 0's run sent to every rank."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
from pathlib import Path

import numpy as np
import torch

from . import distributed, rundir
from .continued import prior
from .replicas import SAFE_GAIN, rule
from .rundir import CHECKPOINT, INCOMPLETE
from ..config import Config, parse_size, to_toml
from ..corpus import phrases
from ..corpus import vocab as vocabulary
from ..corpus.vocab import Vocab
from ..corpus.tokenize import describe, reading_bar
from ..errors import Interrupted, StorageError, UsageError, W2VError, storage_error
from ..files import atomic_path
from ..step.plan import Plan, make_plan

SMALL_CORPUS = 10_000_000  # words under which `train` says that analogy scores need more text


def make_run_dir(cfg: Config, corpus, run_dir: Path, progress: bool = False, world_size: int = 1,
            prior: Vocab | None = None, init: Path | None = None,
            facts: dict | None = None) -> tuple[Vocab, dict]:
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
            vocab, stats = vocabulary.build(text, run_dir / rundir.IDS, cfg.min_count, cfg.max_vocab, cfg.lowercase,
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
    if cfg.eos:  # every line ends with the word </s>, as fastText trains
        vocab, stats = vocabulary.with_line_ends(vocab, run_dir / rundir.IDS, stats)
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


@dataclasses.dataclass
class Opened:
    """One run on its way through _train: what the corpus and the run directory gave, and the plan."""
    cfg: Config
    run_dir: Path
    plan: Plan | None = None
    vocab: Vocab | None = None
    info: dict | None = None
    state: dict | None = None  # the checkpoint a resume continues from
    ids: np.ndarray | None = None
    resume: bool = False
    given: list | None = None  # a new run's corpus as this rank's command gave it (the ranks' must agree)
    created: bool = False  # the run directory is this process's: removed if training never starts
    write_s: float = 0.0  # checkpoints, vectors and metrics.jsonl
    score_s: float = 0.0  # --eval-epochs


def open_run(world, cfg, corpus, run_dir, resume, progress, log, sig, held: contextlib.ExitStack,
             init: Path | None = None, facts: dict | None = None, plan: Plan | None = None) -> Opened:
    """Rank 0: the run directory made (the vocabulary, corpus.ids, config.toml) or reopened for a resume, its lock
    taken first (held to the end of `held`). `init`: the run --init continues; `facts`: make_run_dir's; `plan`: the
    step, where the caller made it from cfg (else made here; a resume's from the config it reads back)."""
    run_dir = Path(run_dir) if run_dir else None
    if not resume and world is not None and world.attempt > 0 and run_dir is not None \
            and rundir.interrupted(run_dir) and (run_dir / CHECKPOINT).exists():
        log(f"restart {world.attempt} of the torchrun job: resuming {run_dir}")
        resume = True
    if resume:
        run = _reopen_held(world, run_dir, held)
    else:
        plan = plan or make_plan(cfg, world.size if world else 1)  # usage errors before any work
        if cfg.epochs == 0 and init is None:
            raise UsageError("--epochs 0 trains nothing; it is for --init RUN (RUN's vectors, with the new words')")
        old = prior(init, cfg) if init is not None else None
        run = _new_held(cfg, plan, corpus, run_dir, held)
        run.given = given(corpus)
        try:
            run.vocab, run.info = make_run_dir(run.cfg, corpus, run.run_dir, progress, world.size if world else 1, old,
                                          init, facts)
        except BaseException as e:
            if run.created:  # nothing is left of a run that never started
                shutil.rmtree(run.run_dir, ignore_errors=True)
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted("interrupted while building the vocabulary; nothing was kept",
                                  code=sig.code) from None
            raise
        _say_vocabulary(run, old, init, log)
    # a resumed run's ids are checked against the vocabulary: an id outside it would crash the kernel
    run.ids = rundir.open_ids(run.run_dir, run.info.get("ids"), len(run.vocab), check_range=run.resume)
    return run


def _reopen_held(world, run_dir: Path | None, held: contextlib.ExitStack) -> Opened:
    """A stopped run read back, under its lock, and its plan made from its config."""
    if run_dir is None or not run_dir.is_dir():
        raise UsageError(f"cannot resume {run_dir}: not a directory")
    try:
        held.enter_context(rundir.hold(run_dir, "wait for it to finish, or stop it and then run this again"))
    except StorageError as e:  # the lock file cannot be made there (read-only): nor can a checkpoint
        raise StorageError(f"{e}, then continue with: {resume_command(world, run_dir)}", e.errno, e.path) from None
    cfg, vocab, info, state = reopen(run_dir, world)
    return Opened(cfg, run_dir, make_plan(cfg, world.size if world else 1), vocab, info, state, resume=True)


def _new_held(cfg: Config, plan: Plan, corpus, run_dir: Path | None, held: contextlib.ExitStack) -> Opened:
    """A new run's directory, empty, under its lock: run_dir, or a default name claimed here (a run started at the
    same moment takes the next). Its config records the step's batch and shared noise (config.toml)."""
    if run_dir is None:
        first = Path(corpus[0] if isinstance(corpus, (list, tuple)) else corpus)
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
    return Opened(dataclasses.replace(cfg, batch_size=plan.batch_size, shared_noise=plan.share), run_dir, plan,
                  created=created)


def _say_vocabulary(run: Opened, old: Vocab | None, init: Path | None, log) -> None:
    """The vocabulary pass in one line, and a note where the corpus is small."""
    info = run.info
    log(f"vocabulary: {len(run.vocab):,} words from {info['tokens']:,} tokens in {info['vocab_seconds']:.1f} s"
        + (f" ({info['replaced_bytes']:,} invalid byte{'s' if info['replaced_bytes'] > 1 else ''} replaced by "
           "U+FFFD)" if info["replaced_bytes"] else "")
        + (f" (two passes: its distinct words outgrew --vocab-memory {run.cfg.vocab_memory} and were counted "
           "in parts on disk; the same vocabulary)" if info.get("vocab_passes", 1) > 1 else "")
        + (f", after {run.cfg.phrases} phrase passes ({info['phrases_joined']:,} pairs joined in "
           f"{info['phrase_seconds']:.1f} s)" if run.cfg.phrases else "")
        + (f"; {len(run.vocab) - len(old):,} new words beside the {len(old):,} of {init}" if old else ""))
    if info["tokens"] < SMALL_CORPUS:
        log(f"note: {info['tokens']:,} words is little text for word vectors: on the analogies sg-neg scored 2.8% on "
            "0.84M words and 36% on the 16.9M-word benchmark corpus (docs/benchmarks-log.md section 8)")


def _vacant(run_dir: Path) -> None:
    if rundir.occupied(run_dir):
        raise UsageError(f"run directory {run_dir} already exists and is not empty; pass another --out (out=) or "
                         "--resume it (resume=True)")


def reopen(run_dir: Path | None, world: distributed.World | None = None):
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
    state = rundir.load_checkpoint(run_dir, vocab.words, cfg)
    if size > 1 and len(state.get("ranks", [])) != size:
        raise rundir.damaged(run_dir / CHECKPOINT, f"it holds the positions of {len(state.get('ranks', []))} "
                             f"ranks where the run has {size}")
    return cfg, vocab, info, state


def given(corpus) -> list[str]:
    return [str(p) for p in (corpus if isinstance(corpus, (list, tuple)) else [corpus])]


def join_ranks(world, run: Opened, log, timeout) -> None:
    """A distributed run's ranks: rank 0's run shared with every rank, each its shard, device and threads. A rank
    whose command gave another corpus or other settings than rank 0's stops the job (W2VError, code 2)."""
    rank = world.rank
    mine = (run.cfg, run.given) if rank > 0 and not run.resume else None
    (run.cfg, run.plan, run.vocab, run.info, run.state, run.run_dir, run.ids, run.resume,
     run.given) = share_run(world, run.cfg, run.plan, run.vocab if rank == 0 else None,
                            run.info if rank == 0 else None, run.state if rank == 0 and run.resume else None,
                            run.run_dir, run.ids if rank == 0 else None, run.resume, run.given)
    if mine is not None and not run.resume:  # (rank 0 resumes a restarted job by itself: its command's run)
        _same_command(world, mine, run.cfg, run.given)
    run.cfg = dataclasses.replace(run.cfg, threads=world.threads(run.cfg.threads),  # this process's share of cores
                                  sync_timeout=timeout or run.cfg.sync_timeout)  # a resume's flag wins
    world.patience(run.cfg.sync_timeout)
    if rank == 0 and isinstance(run.cfg.sync_gain, float) and run.cfg.sync_gain > SAFE_GAIN:
        log(f"--sync-gain {run.cfg.sync_gain:g} carries a row the replicas each settled past its mirror "
            f"image, which can grow: expect divergence (auto never goes above {SAFE_GAIN:g})")


# what may differ between the ranks' commands: each machine's cores, and what rank 0 fills in from its plan
PER_RANK = ("threads", "batch_size", "shared_noise", "sync_timeout")


def _same_command(world, mine: tuple, cfg: Config, corpus: list | None) -> None:
    """This rank's command against rank 0's: the same corpus and settings, else one line naming what differs."""
    own, own_corpus = mine
    differ = [f"--{f.name.replace('_', '-')} {getattr(own, f.name)} (rank 0: {getattr(cfg, f.name)})"
              for f in dataclasses.fields(Config) if f.name not in PER_RANK
              and getattr(own, f.name) != getattr(cfg, f.name)]
    if own_corpus != corpus:
        differ.insert(0, f"corpus {' '.join(own_corpus)} (rank 0: {' '.join(corpus or [])})")
    if differ:
        raise W2VError(f"rank {world.rank} ({socket.gethostname()}) was started with {', '.join(differ)}: start every "
                       "machine with the same command", code=2)


def share_run(world, cfg, plan, vocab, info, state, run_dir, ids, resume, corpus):
    """Rank 0's run on every rank (distributed.share): the config, the plan (its device placed on this rank's GPU),
    vocabulary, [run] facts, a resumed run's checkpoint, each rank's shard of the encoded corpus, and the corpus as
    rank 0's command gave it."""
    payload, tensors = None, {}
    if world.rank == 0:
        payload = {"config": dataclasses.asdict(cfg), "plan": {**dataclasses.asdict(plan), "device": plan.device.type},
                   "words": vocab.words, "counts": vocab.counts, "info": info, "run_dir": str(run_dir),
                   "resume": resume, "corpus": corpus}
        if resume:
            tensors = {k: state[k] for k in rundir.TENSORS}
            payload["state"] = {k: v for k, v in state.items() if k not in tensors}
    payload, tensors, shard = distributed.share(world, payload, tensors, ids)
    state = {**payload["state"], **tensors} if payload["resume"] else None
    plan = Plan(**{**payload["plan"], "device": world.place(torch.device(payload["plan"]["device"]))})
    return (Config(**payload["config"]), plan, Vocab(payload["words"], payload["counts"]), payload["info"], state,
            Path(payload["run_dir"]), shard, payload["resume"], payload["corpus"])


def resume_command(world: distributed.World | None, run_dir) -> str:
    return distributed.resume_command(run_dir, world.size if world else 1, world.local_size if world else None)
