"""Hyperparameters: one dataclass, filled from defaults < TOML file < CLI flags, written to config.toml."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .errors import UsageError


MODELS = ("sg", "cbow")
# the output heads (heads.py): sampled and tree heads, and the exact softmax
LOSSES = ("neg", "nce", "hs", "infonce", "sampled-softmax", "softmax")
NOISE_HEADS = ("neg", "nce", "infonce", "sampled-softmax")  # the heads that draw k noise words
DEVICES = ("auto", "cpu", "cuda")
KERNELS = ("auto", "fused", "torch")
GAINS = ("auto", "per-row")  # --sync-gain's rules besides a number (replicas.rule)
ENCODING_ERRORS = ("strict", "replace")
SYNCS = ("full", "rows")  # replicas.py: all-reduce every matrix whole, or only the rows some rank changed


@dataclass
class Config:
    model: str = "sg"
    loss: str = "neg"
    dim: int = 100
    window: int = 5
    negatives: int = 5
    min_count: int = 5
    max_vocab: int | None = None
    # bytes the vocabulary pass's table of distinct words may take (a number, or 512M, 2G, ...): past it the words
    # are counted in partitions spilled to disk and the text read twice, with the same result (vocab.build)
    vocab_memory: int | str = "512M"
    sample: float = 1e-3
    noise_power: float = 0.75
    epochs: int = 5
    lr: float | None = None  # None -> 0.025 for sg, 0.05 for cbow (word2vec.c's defaults), 0.05 with subwords
    min_lr_ratio: float = 1e-4  # word2vec.c never lets the rate fall below lr * 1e-4
    batch_size: int | None = None  # examples (sg pairs, cbow centres) per step; None -> step.plan.make_plan's
    # consecutive examples that share one draw of the k noise words; 1 = each its own, as word2vec; None ->
    # step.plan.make_plan's (the fused steps only)
    shared_noise: int | None = None
    chunk_tokens: int = 1_000_000  # corpus tokens turned into examples at once on the device
    lowercase: bool = False
    encoding_errors: str = "strict"
    # phrase passes before the vocabulary (phrases.py): word2phrase's score, min_count, thresholds 100 for the last
    # pass and twice the next one's for each earlier one (demo-phrases.sh's 200, 100); 0: none
    phrases: int = 0
    # fastText's subword vectors (corpus/subwords.py): a word's input vector is the mean of its own row and the rows
    # of its character n-grams of these lengths ("MIN-MAX"; None: words only), hashed into `buckets` rows
    subwords: str | None = None
    buckets: int = 2_000_000
    jamo: bool = False  # and each Hangul word's jamo n-grams (Park et al. 2018), hashed into the same buckets
    # every line ends with the word </s> (fastText's; vocab.with_line_ends): None -> on with subwords, else off
    eos: bool | None = None
    device: str = "auto"
    kernel: str = "auto"  # neg/nce step: fused (compiled, Hogwild; CPU or GPU) or torch (tensor ops); auto = fused where it runs
    threads: int = 0  # 0 -> all cores
    seed: int = 1
    keep_corpus: bool = False  # keep corpus.ids once the run has finished (run.train._finish removes it)
    eval_epochs: bool = False  # score analogies, WordSim353 and SimLex-999 at each epoch end (metrics.jsonl)
    # several processes (torchrun; replicas.py): words each trains between synchronisations of the replicas, what
    # moves (full or rows), P = P0 + gain * mean of the replicas' changes (each process training at processes / gain
    # times lr: replicas.rule), and how long a rank is waited for
    sync_words: int = 1_000_000  # with the hot rows below, as good as synchronising 10 times as often, and faster
    sync: str = "full"
    sync_gain: float | str = "auto"  # auto: (processes + 2) / 4, at most 2; per-row: row_gain's (replicas.rule)
    sync_timeout: float = 300.0
    # and the most frequent words' rows, combined more often (Ji et al. 2016): how many, every how many words
    sync_hot_rows: int = 2000  # 0: none
    sync_hot_words: int = 50_000

    def resolved(self) -> "Config":
        """A copy with the learning rate's and --eos's defaults, which depend on the model and --subwords, filled
        in. (The batch's depends on the device and the step: step.plan.make_plan fills it in.)"""
        # with subwords fastText's 0.05 for both: sg at 0.025 scored 0.03 lower on Korean WS353 (issue 39)
        lr = self.lr if self.lr is not None else (0.025 if self.model == "sg" and self.subwords is None else 0.05)
        # fastText's end-of-line word with its subwords, as fastText trains them; word2vec's none without
        eos = self.eos if self.eos is not None else self.subwords is not None
        return dataclasses.replace(self, lr=lr, eos=eos)

    def subword_lengths(self) -> tuple[int, int] | None:
        """--subwords' (MIN, MAX) n-gram lengths, or None without subwords; a UsageError for a bad range."""
        if self.subwords is None:
            return None
        lo, _, hi = str(self.subwords).partition("-")
        try:
            minn, maxn = int(lo), int(hi or lo)
        except ValueError:
            raise UsageError(f"--subwords takes MIN-MAX character lengths, as 3-6 (got {self.subwords!r})") from None
        if not 1 <= minn <= maxn:
            raise UsageError(f"--subwords {self.subwords}: need 1 <= MIN <= MAX, as 3-6 (fastText's) or 1-4 (Korean)")
        return minn, maxn

    def validate(self) -> "Config":
        """Raise UsageError for any out-of-range or unknown value, before any work starts."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UsageError(msg)

        need(self.model in MODELS, f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        need(self.loss in LOSSES, f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        need(self.device in DEVICES, f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}")
        need(self.kernel in KERNELS, f"unknown kernel {self.kernel!r}: choose one of {', '.join(KERNELS)}")
        need(self.encoding_errors in ENCODING_ERRORS,
             f"unknown encoding-errors {self.encoding_errors!r}: choose strict or replace")
        need(self.phrases >= 0, f"--phrases must be >= 0 (got {self.phrases}); 0 joins no phrases")
        for name in ("dim", "window", "chunk_tokens", "min_count"):
            need(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be > 0 (got {getattr(self, name)})")
        # 0 is for continued training (--init): the earlier run's vectors, with the new words' added
        need(self.epochs >= 0, f"--epochs must be >= 0 (got {self.epochs}); 0 only with --init")
        need(self.batch_size is None or self.batch_size > 0, f"--batch-size must be > 0 (got {self.batch_size})")
        need(self.shared_noise is None or self.shared_noise >= 1,
             f"--shared-noise must be >= 1 (got {self.shared_noise}); 1 draws noise words for every example")
        if self.loss in NOISE_HEADS:
            need(self.negatives > 0, f"--negatives must be > 0 with --loss {self.loss} (got {self.negatives})")
        need(self.max_vocab is None or self.max_vocab > 0, f"--max-vocab must be > 0 (got {self.max_vocab})")
        parse_size(self.vocab_memory)
        need(not self.jamo or self.subwords is not None, "--jamo adds jamo n-grams to --subwords' character "
             "n-grams: give both, as --subwords 1-4 --jamo (Park et al.'s)")
        self.subword_lengths()
        need(self.buckets > 0, f"--buckets must be > 0 (got {self.buckets}); fastText's default is 2000000")
        need(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), f"--lr must be > 0 (got {self.lr})")
        need(self.sample >= 0 and math.isfinite(self.sample), f"--sample must be >= 0 (got {self.sample}); 0 turns it off")
        need(self.noise_power >= 0, f"--noise-power must be >= 0 (got {self.noise_power})")
        need(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        need(self.threads >= 0, f"--threads must be >= 0 (got {self.threads})")
        need(self.sync in SYNCS, f"unknown sync {self.sync!r}: choose one of {', '.join(SYNCS)}")
        need(self.sync_words > 0, f"--sync-words must be > 0 (got {self.sync_words})")
        # below 1 the replicas' changes would be shrunk; SPARK-24666: summing (gain = processes) can overflow
        need(self.sync_gain in GAINS or (not isinstance(self.sync_gain, str) and 1 <= self.sync_gain < math.inf),
             f"--sync-gain must be auto, per-row or a number >= 1 (got {self.sync_gain}): 1 averages the replicas, "
             "2 adds twice their mean change, each at processes / gain times --lr")
        need(self.sync_hot_rows >= 0, f"--sync-hot-rows must be >= 0 (got {self.sync_hot_rows}); 0 turns it off")
        need(self.sync_hot_words > 0, f"--sync-hot-words must be > 0 (got {self.sync_hot_words})")
        need(0 < self.sync_timeout < math.inf, f"--sync-timeout must be > 0 seconds (got {self.sync_timeout})")
        return self


# The Python types a TOML value may have for each field (bool is excluded from int explicitly below).
_KINDS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
FIELD_KINDS = {f.name: sum((_KINDS[t] for t in f.type.split(" | ") if t in _KINDS), ()) for f in fields(Config)}


PRESETS = Path(__file__).parent / "configs"  # package data: an installed tool has them too


def parse_gain(text: str | None) -> float | str | None:
    """--sync-gain's text: auto, per-row, or a number (validate checks its range)."""
    if text is None or text in GAINS:
        return text
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--sync-gain must be auto, per-row or a number >= 1 (got {text!r})") from None


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_VOCAB_MEMORY = 1 << 20  # the table's first size is about 2 MB: below 1M every table would spill at once


def parse_size(value: int | str, option: str = "--vocab-memory") -> int:
    """A memory bound's bytes (`option`'s): a number of bytes, or one with K, M, G or T (powers of 1024; 512M, 1.5G,
    2GB)."""
    match = None if isinstance(value, bool) else re.fullmatch(r"(\d+(?:\.\d*)?)([KMGT]?)(?:I?B)?",
                                                                   str(value).strip(), re.IGNORECASE)
    if match is None:
        raise UsageError(f"{option} must be a size such as 512M or 2G (got {value!r})")
    size = int(float(match[1]) * _UNITS[match[2].upper()])
    if size < MIN_VOCAB_MEMORY:
        raise UsageError(f"{option} must be at least 1M (got {value!r})")
    return size


def presets() -> list[str]:
    """The names `--config` accepts besides a path (sg-neg, cbow-nce, ...)."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def find_config(name: str | Path) -> Path:
    """A config file: an existing path, else a preset by name (with or without .toml)."""
    path = Path(name)
    if path.is_file():
        return path
    preset = PRESETS / f"{path.name.removesuffix('.toml')}.toml"
    if path.parent == Path(".") and preset.is_file():
        return preset
    close = difflib.get_close_matches(path.name.removesuffix(".toml"), presets(), n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UsageError(f"config file {name} not found; {hint}pass a TOML file or a preset: {', '.join(presets())}")


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; a missing or malformed file is a usage error naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read config file {path}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or " ".join(str(e).split())


def load_toml(path: str | Path) -> dict:
    """The hyperparameters of a preset or a run's config.toml; unknown keys and wrong types are usage errors."""
    data = read_toml(path)
    return train_values(data.get("train", data), path)  # a flat preset, or the [train] table config.toml has


def train_values(table: dict, path: str | Path) -> dict:
    """A [train] table's values (or the API's options), checked against the Config fields (UsageError naming
    `path`). numpy's integers and floats pass as Python's."""
    data = dict(table)
    for key, value in data.items():
        if key not in FIELD_KINDS:
            raise UsageError(f"unknown key {key!r} in {path}; known keys: {', '.join(sorted(FIELD_KINDS))}")
        kinds = FIELD_KINDS[key]
        if isinstance(value, (bool, np.bool_)):  # before the numbers: a bool is an int to Python
            fits, value = bool in kinds, bool(value)
        elif isinstance(value, numbers.Integral):
            fits, value = int in kinds, (float(value) if float in kinds else int(value))
        elif isinstance(value, numbers.Real):
            fits, value = float in kinds, float(value)
        else:
            fits = isinstance(value, kinds)
        if not fits:
            names = [k.__name__ for k in kinds if not (k is int and float in kinds)]  # "float" covers an int
            raise UsageError(f"bad value for {key!r} in {path}: expected {' or '.join(names)}, got {table[key]!r}")
        data[key] = value
    return data


def make_config(toml_path: str | Path | None = None, base: dict | None = None, **flags) -> Config:
    """defaults < base (the settings --init takes from its run) < TOML file < flags (flags that are None were not
    given on the command line)."""
    values = dict(base or {})
    values.update(load_toml(find_config(toml_path)) if toml_path else {})
    values.update({k: v for k, v in flags.items() if v is not None})
    return Config(**values).validate().resolved()


def to_toml(cfg: Config, extra: dict | None = None) -> str:
    """The resolved hyperparameters as a [train] table that `--config` reads back, plus info tables."""
    def fmt(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    lines = ["[train]"]
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        lines.append(f"{f.name} = {fmt(v)}" if v is not None else f"# {f.name} = (none)")
    for table, items in (extra or {}).items():
        lines += ["", f"[{table}]"] + [f"{k} = {fmt(v)}" for k, v in items.items()]
    return "\n".join(lines) + "\n"
