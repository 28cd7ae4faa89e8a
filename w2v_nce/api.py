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
from typing import TYPE_CHECKING

from .run import continued, rundir
from .corpus.inputs import STDIN, corpus_paths, inputs_note
from .run.sentences import write_sentences, write_stdin
from .config import Config, find_config, load_toml, make_config, train_values
from .errors import UsageError, W2VError

if TYPE_CHECKING:
    from .step.plan import Plan

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
        from .run import vectors as run_vectors
        from .tools import vectorfiles
        if self._trainer is not None:
            return self._trainer.keyed_vectors()
        if self.finished and rundir.read_config(self.path)[0].subwords is None:
            return vectorfiles.load_vectors(self.path / rundir.VECTORS, self.trust_pickle)
        run = rundir.load_run(self.path)  # a stopped run: its checkpoint's
        return run_vectors.of_run(run)


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
          on_progress: Callable | None = None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, log: Callable | None = None, **options) -> Run:
    """Train a model and return its Run.

    corpus: a path, a list of paths (read in order), or an iterable of sentences (each a list of token strings, or
    a string split at whitespace), read once and streamed into the run directory. out: the run directory (default: a
    new one each call, runs/<name>-<model>-<loss>, then -2, -3, ...; to train a notebook cell again into one
    directory, pass out= and overwrite=True, which replaces the run there, under its lock). config: a preset name or
    a TOML file, as --config; options: the training flags by their Python names (model="cbow", loss="nce",
    epochs=5, min_count=2, ...), over it, each checked before any work. init: a finished run to continue from (the
    vocabulary grows by the corpus's words; its model, head, dim, window, min_count, lr, sample and tokenisation
    are taken unless config or an option sets them). resume=True: continue the stopped run `out`.
    on_epoch(run, epoch, metrics) after each epoch's checkpoint, on_progress(run, metrics) at each progress report,
    in this thread; one that returns False stops training with a checkpoint (the run stays resumable), one that
    raises stops the same way and its exception propagates. log: a function for the one-line messages the CLI
    prints (default: none)."""
    from .run import train as training

    log = log or (lambda *_: None)
    init_dir = Path(init.path if isinstance(init, Run) else init) if init is not None else None
    run_dir = Path(out.path if isinstance(out, Run) else out) if out is not None else None
    if resume:
        cfg, paths, facts, plan = None, None, None, None
        timeout = _resume_options(run_dir, config, init, overwrite, options)
    else:
        timeout = None
        cfg, plan, paths, run_dir, facts = _new_run(corpus, run_dir, config, init_dir, overwrite, options, log)
    hooks = training.Hooks(log, score=_scores)
    if on_progress is not None:
        hooks.on_progress = lambda row: on_progress(_live(hooks), row)
    if on_epoch is not None:
        hooks.on_epoch = lambda epoch, row: on_epoch(_live(hooks), epoch, row)
    sentences = paths[0] if paths and paths[0].name == rundir.SENTENCES and paths[0].parent == run_dir else None
    try:
        summary = training.train(cfg, paths, run_dir, resume=resume, progress=progress, log=log,
                                 timeout=timeout, init=init_dir, hooks=hooks, facts=facts, plan=plan)
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


def _scores(kv) -> dict:
    """--eval-epochs' scores (the run is given them here: it does not import the tools)."""
    from .tools import evaluate
    return evaluate.scores(kv)


def _live(hooks) -> Run:
    """The Run a callback gets: the directory being trained, with the live model."""
    return Run(hooks.run_dir, trainer=hooks.trainer)


# gensim Word2Vec's names for what ours are called otherwise: the error for one of them names ours
GENSIM_NAMES = {"vector_size": "dim", "size": "dim", "sg": "model='sg' (sg=1) or model='cbow' (sg=0)",
                "negative": "negatives", "workers": "threads", "alpha": "lr", "iter": "epochs",
                "min_alpha": "nothing: the rate decays to lr * 1e-4, as word2vec's", "hs": "loss='hs'",
                "ns_exponent": "noise_power", "max_final_vocab": "max_vocab", "max_vocab_size": "vocab_memory",
                "sentences": "the corpus argument", "corpus_file": "the corpus argument",
                "callbacks": "on_epoch= and on_progress=", "compute_loss": "nothing: run.metrics has the loss"}
# what --init takes from its run unless --config or a flag sets it: what its rows were trained as, and how its text
# was read (the new text is read the same way)
INHERITED = ("model", "loss", "negatives", "noise_power", "dim", "window", "min_count", "lr", "sample", "lowercase",
             "encoding_errors", "phrases", "subwords", "buckets", "jamo", "eos")


def _resume_options(run_dir: Path | None, config, init, overwrite: bool, options: dict) -> float | None:
    """What a resume may be given: out= and, under torchrun, sync_timeout= (returned)."""
    if run_dir is None:
        raise UsageError("resume=True needs out=, the run directory to continue")
    if set(options) - {"sync_timeout"} or config is not None or init is not None or overwrite:
        raise UsageError("a resumed run continues with its own options (config.toml); pass only out= and, "
                         "under torchrun, sync_timeout=")
    timeout = train_values({k: v for k, v in options.items() if v is not None},
                           "the options of w2v_nce.train").get("sync_timeout")
    if timeout is not None:
        Config(sync_timeout=timeout).validate()
    return timeout


def _new_run(corpus, run_dir: Path | None, config, init_dir: Path | None, overwrite: bool, options: dict, log):
    """A new run's config and plan, its corpus's paths (sentences and standard input streamed into the run directory
    first), its directory (cleared where overwrite asks) and config.toml's facts; every error before any work."""
    cfg, taken, plan = configure(config, options, init_dir)
    if taken:
        log(f"--init {init_dir}: its {', '.join(f'{k} {_show(getattr(cfg, k))}' for k in taken)} (what "
            "--config and the flags did not set)")
    if overwrite and run_dir is None:
        raise UsageError("overwrite needs out=, the run directory to replace (--out)")
    skipped: list = []
    paths = corpus_paths(corpus, skipped)  # a wrong corpus is said before a run is overwritten
    if paths is not None and paths.count(STDIN) > 1:
        raise UsageError("standard input (-) can be read once: give it once")
    note = inputs_note(paths or [], skipped)
    if note:
        log(note)
    facts = {"init_settings": list(taken)} if init_dir is not None else {}
    if skipped:  # the files read are [run] corpus
        facts["skipped"] = [f"{p}: {why}" for p, why in skipped]
    if overwrite and rundir.clear(run_dir):
        log(f"overwriting {run_dir}")
    if paths is None:  # sentences: into the run directory first
        run_dir = run_dir or rundir.default_run_dir(Path("sentences"), cfg)
        paths = [write_sentences(corpus, run_dir)]
    elif STDIN in paths:  # standard input: likewise
        run_dir = run_dir or rundir.default_run_dir(Path("stdin"), cfg)
        paths[paths.index(STDIN)] = write_stdin(run_dir)
    return cfg, plan, paths, run_dir, facts


def configure(config, options: dict, init: Path | None = None) -> tuple[Config, tuple[str, ...], Plan]:
    """The run's Config: (init's settings,) the preset or TOML file, then the options, each checked (UsageError
    naming the option, the value and what it takes); the names of the settings taken from init; and the run's
    plan (the device and the step: their errors before any work)."""
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        hints = [f"{k!r} is gensim's name, ours is {GENSIM_NAMES[k]}" for k in unknown if k in GENSIM_NAMES]
        raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                         + (f" ({'; '.join(hints)})" if hints else "")
                         + f"; the options are the training flags' names: {', '.join(sorted(_FIELDS))}")
    options = train_values({k: v for k, v in options.items() if v is not None}, "the options of w2v_nce.train")
    from .run.distributed import from_env
    from .step.plan import make_plan
    base, taken = (_inherited(init, config, options) if init is not None else ({}, ()))
    cfg = make_config(config, base=base, **options)
    world = from_env()
    return cfg, taken, make_plan(cfg, world.size if world else 1)


def _inherited(init: Path, config, options: dict) -> tuple[dict, tuple[str, ...]]:
    """init's settings that neither config nor the options set; a dim that differs from init's is an error."""
    old, _ = continued.settings(init)
    asked = {**(load_toml(find_config(config)) if config else {}), **options}
    if "dim" in asked and asked["dim"] != old.dim:
        raise UsageError(f"--init {init} has dim {old.dim} and dim {asked['dim']} was asked: a run's rows continue "
                         f"only at its dim; leave --dim out (it is taken from {init})")
    taken = [k for k in INHERITED if k not in asked]
    if "lr" in taken and asked.get("model", old.model) != old.model:
        taken.remove("lr")  # another model: its own default rate, not init's
    return {k: getattr(old, k) for k in taken}, tuple(taken)


def _show(value) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)
