"""The library's front door: `w2v_nce.train`, `w2v_nce.load` and `Run`, what the CLI's `train` is a layer over.

    import w2v_nce
    run = w2v_nce.train(sentences, "runs/notebook", model="cbow", loss="nce", epochs=5, min_count=2)
    run.vectors.most_similar("king")

`train` takes a corpus as the CLI does (a path, a list of paths) or as gensim does (an iterable of sentences,
each a list of tokens or a string), the CLI's training flags by their Python names, and callbacks that run in
the caller's thread. It prints nothing but the progress bar (progress=False: not that either), raises
W2VError (UsageError for a bad option, before any work) instead of exiting, and leaves no signal handler
installed. A stopped run (a callback's False, Ctrl-C) is INCOMPLETE and resumable: train(out=run, resume=True).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from . import rundir
from .inputs import corpus_paths, write_sentences, write_stdin, STDIN
from .config import Config, make_config
from .errors import UsageError, W2VError

_FIELDS = {f.name for f in dataclasses.fields(Config)}


class Run:
    """A run directory: `path`, its resolved hyperparameters (`config`), its vectors (gensim KeyedVectors: the
    finished run's, or during training and for a stopped run the latest state's), `metrics` (metrics.jsonl's rows)
    and whether it is `finished`. `summary` is the training summary of the call that returned it, if any.
    `trust_pickle`: read vectors.kv with gensim's own loader, which runs whatever the pickle names (only for a run
    from someone you trust); otherwise only what a gensim KeyedVectors file holds is admitted."""

    def __init__(self, path: str | os.PathLike, trainer=None, summary=None, trust_pickle: bool = False):
        self.path = Path(path)
        self._trainer = trainer  # while training: the live model, for the callbacks
        self.summary = summary
        self.trust_pickle = trust_pickle

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, finished={self.finished})"

    @property
    def config(self) -> dict:
        return dataclasses.asdict(rundir.read_config(self.path)[0])

    @property
    def finished(self) -> bool:
        return not rundir.interrupted(self.path) and (self.path / rundir.VECTORS).exists()

    @property
    def metrics(self) -> list[dict]:
        try:
            lines = (self.path / rundir.METRICS).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise W2VError(f"cannot read {self.path / rundir.METRICS}: {e.strerror or e}") from None
        return [json.loads(line) for line in lines if line.strip()]

    @property
    def vectors(self):
        from . import export, vectorfiles
        if self._trainer is not None:
            return self._trainer.keyed_vectors()
        if self.finished:
            return vectorfiles.load_vectors(self.path / rundir.VECTORS, self.trust_pickle)
        run = rundir.load_run(self.path)  # a stopped run: its checkpoint's
        return export.to_keyed_vectors(run["words"], run["counts"], run["input"].numpy())


def load(path: str | os.PathLike | Run, trust_pickle: bool = False) -> Run:
    """An existing run directory (finished or not). trust_pickle: see Run."""
    path = Path(path.path if isinstance(path, Run) else path)
    if not (path / rundir.CONFIG).is_file():
        raise W2VError(f"{path} is not a run directory (it has no {rundir.CONFIG}); pass one written by "
                       "w2v_nce.train or `w2v-nce train`")
    rundir.read_config(path)  # a damaged one says so now
    return Run(path, trust_pickle=trust_pickle)


def train(corpus=None, out: str | os.PathLike | Run | None = None, *, config: str | os.PathLike | None = None,
          init: str | os.PathLike | Run | None = None, on_epoch: Callable | None = None,
          on_progress: Callable | None = None, resume: bool = False, progress: bool = True,
          log: Callable | None = None, **options) -> Run:
    """Train a model and return its Run.

    corpus: a path, a list of paths (read in order), or an iterable of sentences (each a list of token strings, or
    a string split at whitespace), read once and streamed into the run directory. out: the run directory (default
    runs/<name>-<model>-<loss>). config: a preset name or a TOML file, as --config; options: the training flags by
    their Python names (model="cbow", loss="nce", epochs=5, min_count=2, ...), over it. init: a finished run to
    continue from (the vocabulary grows by the corpus's words). resume=True: continue the stopped run `out`.
    on_epoch(run, epoch, metrics) after each epoch's checkpoint, on_progress(run, metrics) at each progress report,
    in this thread; one that returns False stops training with a checkpoint (the run stays resumable), one that
    raises stops the same way and its exception propagates. log: a function for the one-line messages the CLI
    prints (default: none)."""
    from . import training

    log = log or (lambda *_: None)
    timeout = None
    if resume:
        if out is None:
            raise UsageError("resume=True needs out=, the run directory to continue")
        if set(options) - {"sync_timeout"} or config is not None or init is not None:
            raise UsageError("a resumed run continues with its own options (config.toml); pass only out= and, "
                             "under torchrun, sync_timeout=")
        timeout = options.get("sync_timeout")
        if timeout is not None:
            Config(sync_timeout=timeout).validate()
        cfg, paths, run_dir = None, None, Path(out.path if isinstance(out, Run) else out)
    else:
        cfg = configure(config, options)
        run_dir = Path(out.path if isinstance(out, Run) else out) if out is not None else None
        paths = corpus_paths(corpus)
        if paths is None:  # sentences: into the run directory first
            run_dir = run_dir or rundir.default_run_dir(Path("sentences"), cfg)
            paths = [write_sentences(corpus, run_dir)]
        elif STDIN in paths:  # standard input: likewise
            if paths.count(STDIN) > 1:
                raise UsageError("standard input (-) can be read once: give it once")
            run_dir = run_dir or rundir.default_run_dir(Path("stdin"), cfg)
            paths[paths.index(STDIN)] = write_stdin(run_dir)
    hooks = training.Hooks(log)
    if on_progress is not None:
        hooks.on_progress = lambda row: on_progress(_live(hooks), row)
    if on_epoch is not None:
        hooks.on_epoch = lambda epoch, row: on_epoch(_live(hooks), epoch, row)
    init_dir = Path(init.path if isinstance(init, Run) else init) if init is not None else None
    sentences = paths[0] if paths and paths[0].name == rundir.SENTENCES and paths[0].parent == run_dir else None
    try:
        summary = training.train(cfg, paths, run_dir, resume=resume, progress=progress, log=log,
                                 timeout=timeout, init=init_dir, hooks=hooks)
    except training.Interrupted:
        if hooks.error is not None:
            raise hooks.error
        if hooks.stopped:  # a callback's False: the run is INCOMPLETE, with its checkpoint
            return Run(hooks.run_dir)
        raise
    finally:
        if sentences is not None:
            sentences.unlink(missing_ok=True)  # corpus.ids holds it now
            if not (run_dir / rundir.CONFIG).exists():  # the run never started: nothing is left of it
                shutil.rmtree(run_dir, ignore_errors=True)
    return Run(summary.run_dir, summary=summary)


def _live(hooks) -> Run:
    """The Run a callback gets: the directory being trained, with the live model."""
    return Run(hooks.run_dir, trainer=hooks.trainer)


def configure(config, options: dict) -> Config:
    """The run's Config: the preset or TOML file, then the options; an unknown option is a UsageError."""
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"the options are the training flags' names: {', '.join(sorted(_FIELDS))}")
    from .backends import plan
    cfg = make_config(config, **options)
    plan(cfg)  # the device and the step's errors, before any work
    return cfg


