"""The run directory: the files `train` writes, and reading them back with one clear line for each fault.

    config.toml    every hyperparameter, resolved ([train]), and facts about the corpus ([run])
    vocab.tsv      word TAB count, by descending count
    corpus.ids     the tokenised corpus as int32 ids, SEPARATOR between lines (memory-mapped)
    checkpoint.pt  both embedding matrices, the output bias, the exact training position, a checksum
    metrics.jsonl  the training history, one JSON object a line, appended as training goes
    vectors.kv     the input vectors as gensim KeyedVectors, once the run is finished
    INCOMPLETE     present while the run is in progress or was interrupted
    .lock          while a process writes the run (lock.py): the one writer's lock, and who it is

runs/latest points at the newest complete run. Each reader checks what it can afford to (sizes, shapes,
id ranges, the checkpoint's checksum), so that a missing, truncated, corrupt or unreadable file is reported
in one line rather than as a traceback from inside torch or numpy, or, worse, silently trained on.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tomllib
import zlib
from pathlib import Path

import numpy as np

from .. import lock
from ..config import Config, train_values
from ..errors import StorageError, UsageError, W2VError, storage_error
from ..files import save_torch
from ..corpus.vocab import SEPARATOR, Vocab, load_ids

RUNS = Path("runs")
LATEST = RUNS / "latest"
CONFIG, VOCAB, IDS, CHECKPOINT = "config.toml", "vocab.tsv", "corpus.ids", "checkpoint.pt"
VECTORS, METRICS, INCOMPLETE = "vectors.kv", "metrics.jsonl", "INCOMPLETE"
SENTENCES = "sentences.txt"  # the API's iterable corpus, streamed here before the vocabulary pass, then removed
DAMAGED = "the run directory is damaged: train the run again"
# the [run] facts every config.toml ends with (opening.make_run_dir): a truncated file lacks the last ones
RUN_FACTS = ("corpus", "tokens", "kept_tokens", "vocab_size", "vocab_seconds", "replaced_bytes")


def default_run_dir(corpus: Path, cfg: Config, make: bool = False) -> Path:
    """runs/<corpus stem>-<model>-<loss>, with -2, -3, ... so an earlier run is never overwritten. make=True creates
    it, atomically: of two runs started at the same moment, the second takes the next name."""
    stem = corpus.name.split(".")[0] or "corpus"
    base = RUNS / f"{stem}-{cfg.model}-{cfg.loss}"
    n = 1
    while True:
        run = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if make:
            try:
                run.mkdir(parents=True)
                return run
            except FileExistsError:
                pass
            except OSError as e:
                raise storage_error("write", run, e, "pass --out (out=) elsewhere") from None
        elif not run.exists():
            return run
        n += 1


def occupied(run_dir: Path) -> bool:
    """Whether a new run cannot go to run_dir: it is a file, or a directory with something in it (other than the
    sentences the API streamed there for this run, and the lock this process may hold)."""
    run_dir = Path(run_dir)
    return run_dir.exists() and (not run_dir.is_dir()
                                 or any(p.name not in (SENTENCES, lock.RUN_LOCK) for p in run_dir.iterdir()))


def hold(run_dir: Path, advice: str):
    """The run directory's lock, for a process that writes it (a context manager); held elsewhere: lock.Busy,
    '{run directory X} is in use by process N (...); {advice}'."""
    return lock.hold(lock.run_lock(run_dir), f"run directory {run_dir}", advice)


def clear(run_dir: Path) -> bool:
    """Empty run_dir for a new run in its place (--overwrite), under its lock: only a directory w2v-nce wrote (it
    has config.toml) or an empty one. Returns whether there was a run to remove."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise UsageError(f"--overwrite: {run_dir} is a file, not a run directory; pass another --out")
    with hold(run_dir, "wait for it to finish, or stop it; then overwrite it"):
        entries = [p for p in run_dir.iterdir() if p.name != lock.RUN_LOCK]
        if entries and not (run_dir / CONFIG).is_file():
            raise UsageError(f"--overwrite: {run_dir} is not a run directory (it has no {CONFIG}) and is not empty; "
                             "w2v-nce replaces only its own runs: pass another --out")
        for p in entries:
            try:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            except OSError as e:
                raise storage_error("remove", p, e, "check its permissions") from None
    return bool(entries)


def writer(run_dir: Path) -> str | None:
    """The process training run_dir now ('process N (command, started T)'), or None."""
    return lock.holder(lock.run_lock(run_dir))


def point_latest(run_dir: Path) -> None:
    """Atomically repoint runs/latest at run_dir (a relative link when run_dir is inside runs/)."""
    run_dir = run_dir.resolve()
    tmp = RUNS / f".latest.{os.getpid()}"
    try:
        RUNS.mkdir(exist_ok=True)
        target = os.path.relpath(run_dir, RUNS.resolve()) if run_dir.parent == RUNS.resolve() else str(run_dir)
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, LATEST)
    except OSError as e:
        raise storage_error("update", LATEST, e, f"the run in {run_dir} is complete: pass it to export and "
                            "eval by its path") from None


def resolve(path: Path | None) -> Path:
    """The path given, or runs/latest."""
    if path is not None:
        return Path(path)
    if not LATEST.exists():
        raise W2VError("no run found at runs/latest; train one with `w2v-nce train CORPUS` or pass a path")
    return LATEST


def interrupted(run_dir: Path) -> bool:
    return (Path(run_dir) / INCOMPLETE).exists()


def resume_command(run_dir: Path) -> str:
    return f"w2v-nce train --resume {run_dir}"


def not_finished(run_dir: Path) -> W2VError:
    """For a command that needs a finished run's vectors."""
    by = writer(run_dir)
    if by is not None:
        return W2VError(f"run {run_dir} is being trained by {by} and has no vectors yet; they are written when it "
                        f"finishes; its latest checkpoint's now: w2v-nce export {run_dir} --checkpoint --out FILE")
    return W2VError(f"run {run_dir} is interrupted and has no vectors yet; continue it with: "
                    f"{resume_command(run_dir)}, or write its latest checkpoint's vectors with: "
                    f"w2v-nce export {run_dir} --checkpoint")


def damaged(path: Path, reason: str) -> W2VError:
    return W2VError(f"cannot read {path}: {reason}; {DAMAGED}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise storage_error("read", path, e, DAMAGED) from None
    except UnicodeDecodeError:
        raise damaged(path, "it is not UTF-8 text") from None


# -- config.toml and vocab.tsv ---------------------------------------------------------------------

def read_config(run_dir: Path) -> tuple[Config, dict]:
    """The run's resolved Config and its [run] facts (corpus, tokens, vocab_size, ids, ...)."""
    path = Path(run_dir) / CONFIG
    try:
        data = tomllib.loads(_read_text(path))
        if not isinstance(data.get("train"), dict):
            raise ValueError("it has no [train] table")
        missing = [k for k in RUN_FACTS if k not in data.get("run", {})]
        if missing:
            raise ValueError(f"its [run] table lacks {', '.join(missing)} (truncated?)")
        values = train_values(data["train"], path)
        # a run from before --shared-noise drew noise words for every example: it resumes so
        values.setdefault("shared_noise", 1)
        values.setdefault("eos", False)  # a run from before --eos: its corpus.ids has no end-of-line words
        cfg = Config(**values).validate().resolved()
    except (tomllib.TOMLDecodeError, UsageError, ValueError) as e:
        raise damaged(path, " ".join(str(e).split())) from None
    return cfg, data.get("run", {})


def read_vocab(run_dir: Path, size: int | None = None) -> Vocab:
    """vocab.tsv, checked against the number of words the run recorded (a truncated file has fewer)."""
    path = Path(run_dir) / VOCAB
    try:
        vocab = Vocab.loads(_read_text(path))
    except ValueError as e:
        raise damaged(path, str(e)) from None
    if size is not None and len(vocab) != size:
        raise damaged(path, f"it has {len(vocab):,} words where the run has {size:,} (truncated?)")
    return vocab


# -- corpus.ids ------------------------------------------------------------------------------------

def open_ids(run_dir: Path, expected: int | None, vocab_size: int, check_range: bool = False) -> np.ndarray:
    """corpus.ids memory-mapped (read-only), after checking its size against the recorded number of ids; with
    check_range also that every id is a word of the vocabulary or SEPARATOR (an id outside it would make the
    compiled step write outside the matrices)."""
    path = Path(run_dir) / IDS
    try:
        with open(path, "rb"):
            size = os.path.getsize(path)
    except OSError as e:
        raise storage_error("read", path, e, DAMAGED) from None
    if size % 4 or (expected is not None and size != 4 * expected):
        want = f"{4 * expected:,}" if expected is not None else "a multiple of 4"
        raise damaged(path, f"it has {size:,} bytes where the run wrote {want} (truncated?)")
    ids = load_ids(path)
    if check_range:
        for s in range(0, len(ids), 1 << 24):
            block = ids[s:s + (1 << 24)]
            if len(block) and (block.min() < SEPARATOR or block.max() >= vocab_size):
                raise damaged(path, "it holds ids outside the vocabulary (corrupt)")
    return ids


# -- checkpoint.pt ---------------------------------------------------------------------------------

TENSORS = ("input", "output", "bias")  # a checkpoint's trained tensors (trainer.Trainer.tensors)


def _checksum(state: dict) -> int:
    """CRC-32 of the tensors and the position: torch.load checks neither, so corrupt weights would load."""
    import torch

    def tensors(st: dict, keys, crc: int) -> int:
        for key in keys:
            t = st.get(key)
            if isinstance(t, torch.Tensor):
                crc = zlib.crc32(t.detach().cpu().contiguous().view(torch.uint8).numpy(), crc)
        return crc

    crc = zlib.crc32(json.dumps(state["position"], sort_keys=True).encode())
    crc = tensors(state, (*TENSORS, "gen_state", "chunk_gen_state"), crc)
    if "world" in state:  # a distributed run's: every rank's position and random state (replicas.py)
        crc = zlib.crc32(json.dumps(state["world"], sort_keys=True).encode(), crc)
        for rank in state.get("ranks") or []:
            crc = zlib.crc32(json.dumps(rank["position"], sort_keys=True).encode(), crc)
            crc = tensors(rank, ("gen_state", "chunk_gen_state"), crc)
    return crc


def save_checkpoint(state: dict, run_dir: Path) -> None:
    save_torch({**state, "crc32": _checksum(state)}, Path(run_dir) / CHECKPOINT)


def load_checkpoint(run_dir: Path, words: list[str], cfg: Config) -> dict:
    """checkpoint.pt on the CPU, checked: its keys, the matrices' shapes (the input's: a row a word of `words`, the
    run's vocabulary, and with --subwords a row for each bucket the words use) and its checksum. A subword checkpoint
    with a row for every bucket (before the rows were compacted) comes back compacted."""
    import torch

    from ..model.heads import output_rows

    path = Path(run_dir) / CHECKPOINT
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise storage_error("read", path, e, DAMAGED) from None
    except Exception:  # a truncated or foreign file: torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise damaged(path, "it is not a checkpoint (truncated or corrupt)") from None
    need = (*TENSORS, "position", "gen_state")
    if not isinstance(st, dict) or any(k not in st for k in need):
        raise damaged(path, "it is not a checkpoint (keys missing)")
    vocab_size = len(words)
    shapes, rows = [tuple(st[k].shape) for k in TENSORS], output_rows(cfg.loss, vocab_size)
    inputs, buckets, used = vocab_size, "", None
    if cfg.subwords is not None:  # a row for each bucket the words use (subwords.run_table)
        from ..corpus import subwords
        used = subwords.run_table(words, cfg.subword_lengths(), cfg.buckets, cfg.jamo)[2]
        inputs, buckets = vocab_size + len(used), f" and {len(used)} subword buckets in use"
        if shapes[0] == (vocab_size + cfg.buckets, cfg.dim):  # before the rows were compacted: a row every bucket
            inputs = shapes[0][0]
    if shapes != [(inputs, cfg.dim), (rows, cfg.dim), (rows,)]:
        raise damaged(path, f"its matrices have shapes {shapes} where the run has {vocab_size} words{buckets} of dim "
                      f"{cfg.dim} and {rows} output rows")
    if "crc32" in st and _checksum(st) != st["crc32"]:  # checkpoints of w2v-nce 0.1 have none
        raise damaged(path, "its checksum does not match its contents (corrupt)")
    if used is not None and inputs == vocab_size + cfg.buckets != vocab_size + len(used):
        st["input"] = torch.cat((st["input"][:vocab_size], st["input"][vocab_size + torch.from_numpy(used)]))
    return st


def load_run(run_dir: Path) -> dict:
    """A run directory's config, vocabulary and checkpoint tensors (on the CPU), each checked."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise W2VError(f"{run_dir} is not a run directory; pass one written by `w2v-nce train`")
    if not (run_dir / CONFIG).exists() and not (run_dir / CHECKPOINT).exists():
        raise W2VError(f"{run_dir} is not a run directory (no {CONFIG}, no {CHECKPOINT}); pass one written by "
                       "`w2v-nce train`")
    cfg, info = read_config(run_dir)
    vocab = read_vocab(run_dir, info.get("vocab_size"))
    st = load_checkpoint(run_dir, vocab.words, cfg)
    run = {"config": cfg, "words": vocab.words, "counts": vocab.counts, "input": st["input"],
           "head": trained_head(cfg, vocab.counts, st), "position": st["position"],
           "complete": not interrupted(run_dir), "subwords": None}
    lengths = cfg.subword_lengths()
    if lengths is not None:  # "input": the words' vectors, each the mean of its rows; "subwords": the rows
        import torch
        from ..corpus import subwords
        offsets, rows, used = (torch.from_numpy(a) for a in subwords.run_table(vocab.words, lengths, cfg.buckets,
                                                                                cfg.jamo))
        run["subwords"] = {"rows": st["input"], "offsets": offsets, "sub_rows": rows, "lengths": lengths,
                           "buckets": cfg.buckets, "used": used, "jamo": cfg.jamo}
        run["input"] = torch.nn.functional.embedding_bag(rows, st["input"], offsets[:-1], mode="mean")
    return run


def trained_head(cfg: Config, counts: np.ndarray, state: dict):
    """The run's output head with the checkpoint's parameters (for exact evaluation)."""
    from ..config import NOISE_HEADS
    from ..model.heads import make_head
    from ..model.sampling import AliasSampler

    sampler = AliasSampler(counts, cfg.noise_power) if cfg.loss in NOISE_HEADS else None
    head = make_head(cfg.loss, counts, cfg.dim, sampler, cfg.negatives)
    head.weight.copy_(state["output"])
    head.bias.copy_(state["bias"])
    return head


def describe_position(position: dict) -> str:
    """Where a checkpoint is, for a message: 'the start of training', 'the end of epoch 2 (step 112)' or
    'epoch 3, step 130' (the position is the next thing to train)."""
    if position["step"] == 0:
        return "the start of training"
    if position["chunk"] == 0 and position["batch"] == 0 and position.get("piece", 0) == 0:
        return f"the end of epoch {position['epoch']} (step {position['step']})"
    return f"epoch {position['epoch'] + 1}, step {position['step']}"


# -- metrics.jsonl ---------------------------------------------------------------------------------

class History:
    """metrics.jsonl, appended one JSON object a line and flushed, so an interrupted run keeps its history.

    A resumed run first cuts the file back to the length it had at the checkpoint (dropping the lines of the
    steps it will train again, and a half-written last line), then appends."""

    def __init__(self, run_dir: Path, keep_bytes: int | None = None):
        self.path = Path(run_dir) / METRICS
        try:
            self.f = open(self.path, "a+b")
            end = self.f.tell() if keep_bytes is None else min(keep_bytes, self.f.tell())
            self.f.seek(max(0, end - 65536))
            tail = self.f.read(end - self.f.tell())
            if tail and not tail.endswith(b"\n"):  # a line cut by a crash or a full disk
                end -= len(tail) - (tail.rfind(b"\n") + 1)
            self.f.truncate(end)
            self.f.seek(end)
        except OSError as e:
            raise storage_error("write", self.path, e) from None

    def write(self, event: str, **fields) -> dict:
        row = {"event": event, **fields}
        line = json.dumps(row, allow_nan=False, default=float) + "\n"
        try:
            self.f.write(line.encode())
            self.f.flush()
        except OSError as e:
            raise storage_error("write", self.path, e) from None
        return row

    def tell(self) -> int:
        return self.f.tell()

    def close(self) -> None:
        try:
            self.f.close()
        except OSError:  # the failed write already said so; a second error here adds nothing
            pass


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


__all__ = ["StorageError"]
