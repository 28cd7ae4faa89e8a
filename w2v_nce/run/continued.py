"""Continued training (--init RUN): a new run that starts from a finished one.

The new run's vocabulary is RUN's words plus the new text's words that reach --min-count in it, with counts summed
(vocab.merge), so the noise table and sub-sampling see both texts. RUN's input rows, and its output rows and biases
where both heads have a row per word (every head but hs, whose rows are the inner nodes of a Huffman tree that the
new counts rebuild), are carried to its words' new places; new words' rows start as in a new run. The learning rate
starts again at --lr: the old words move as much as new ones, which lets them follow the new text and can also
pull them away from what the first text taught (`make bench-continued` measures both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import rundir
from ..config import Config
from ..errors import UsageError, W2VError


def settings(init: Path) -> tuple[Config, dict]:
    """The config and [run] facts of the finished run `init`, after checking that a new run can start from it."""
    init = Path(init)
    if not (init / rundir.CONFIG).is_file():
        raise UsageError(f"--init {init}: not a run directory written by `w2v-nce train`")
    if rundir.interrupted(init):
        by = rundir.writer(init)
        raise UsageError(f"--init {init}: the run is not finished; "
                         + (f"it is being trained by {by}: wait for it" if by else
                            f"finish it first: {rundir.resume_command(init)}"))
    return rundir.read_config(init)


def prior(init: Path, cfg: Config):
    """The vocabulary of the finished run `init`, after checking that the new run can start from it."""
    old, info = settings(init)
    if old.dim != cfg.dim:
        raise UsageError(f"--init {init} has dim {old.dim} and dim {cfg.dim} was asked: a run's rows continue only "
                         f"at its dim; leave --dim out (it is taken from {init})")
    if _subwords(old) != _subwords(cfg):
        was = (f"--subwords {old.subwords} --buckets {old.buckets}" + " --jamo" * old.jamo if old.subwords
               else "no --subwords")
        raise UsageError(f"--init {init} was trained with {was}: its rows continue only with the same subwords; "
                         "leave --subwords and --buckets out (they are taken from it)")
    return rundir.read_vocab(init, info.get("vocab_size"))


def _subwords(cfg: Config) -> tuple | None:
    return (cfg.subword_lengths(), cfg.buckets, cfg.jamo) if cfg.subwords is not None else None


def carry(trainer, init: Path) -> str:
    """Copy the run `init`'s trained rows into the new trainer's model, each word to its new index; returns what
    was carried (a line for the log)."""
    import torch

    run = rundir.load_run(Path(init))
    at = {w: i for i, w in enumerate(trainer.vocab.words)}
    try:
        rows = torch.as_tensor(np.array([at[w] for w in run["words"]], dtype=np.int64))
    except KeyError as e:  # merge keeps every earlier word: a vocab.tsv changed since would do this
        raise W2VError(f"--init {init}: its word {e.args[0]!r} is not in the new vocabulary; train again") from None
    model, device = trainer.model, trainer.model.input.device
    rows = rows.to(device)
    with torch.no_grad():
        if run["subwords"] is None:
            model.input[rows] = run["input"].to(device)
            carried = "input vectors"
        else:  # the words' own rows, and the n-gram buckets' (the same subwords: prior checked)
            old_rows, v = run["subwords"]["rows"], len(run["words"])
            model.input[rows] = old_rows[:v].to(device)
            # every bucket the old words use, the new words use too (they include the old): its row to its new place
            new = np.searchsorted(trainer.bucket_ids, run["subwords"]["used"].numpy())
            model.input[model.vocab_size + torch.from_numpy(new).to(device)] = old_rows[v:].to(device)
            carried = "input vectors (the words' and the n-gram buckets' rows)"
        if run["config"].loss != "hs" and trainer.cfg.loss != "hs":
            model.head.weight[rows] = run["head"].weight.to(device)
            model.head.bias[rows] = run["head"].bias.to(device)
            carried = "input and output vectors"
    return (f"continued from {init}: its {len(rows):,} words' {carried} carried"
            + ("" if "output" in carried else " (hs's tree is rebuilt from the new counts: its output rows start "
                                              "as in a new run)"))
