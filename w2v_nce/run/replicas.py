"""Keeping the replicas of a distributed run in step (distributed.py starts the processes and finds lost ones).

Each rank trains its own copy of the model on its shard of the corpus, exactly as a single process would (its
own random streams: seed + rank), and every --sync-words words per rank the copies are combined. With P0 the
parameters at the last synchronisation and Δ_r = P_r − P0 what rank r has learned since,

    P = P0 + gain · mean_r Δ_r        on every rank, then P0 = P

by an all-reduce of the Δ's: of every matrix whole (--sync full), or of only the rows some rank changed
(--sync rows: the ranks first gather which rows each changed). Every trained tensor takes part, the output rows
as much as the input vectors: a Spark port that kept each replica's output matrix to itself trained poor vectors.

With a number for the gain, each rank trains at W / gain times the learning rate (rule), so that gain times rate
is W and a row's combined change is, to first order, what one process reading every shard would make of it:
- a row that only one replica saw, or that every replica moves a little (a rare word, or any word early on): the
  changes add up as one process's would;
- a row that every replica has moved all the way to where it settles (a frequent word): a gain of G carries it
  G times as far, and it ends |1 − G| times as far from where it settles as it started: from G > 2 on that grows
  (Spark's word2vec summed its replicas and got infinite values, SPARK-24666; ours diverged with 4 summed).
Between the two, the choice is how high the rate and how high the gain: a higher rate makes every step noisier
(cbow's analogies fell with 4 processes averaged at 4 times the rate), a gain above 1 costs skip-gram SimLex. The
default, gain "auto" (rule), is (W + 2) / 4 and at most 2, at W / gain times the rate: with 2 processes the average
at twice the rate, with 4 a gain of 1.5 at 2.67 times; both within 0.01 of one process on every score, for cbow
and skip-gram (`make bench-distributed`).
Gain "per-row" keeps one process's rate and gives each row its own gain (row_gain): the sum where the replicas
changed a row independently, the average where alike; with hot rows (below) and 2 processes, for those rows
only, and the sum for the others. Section 7 measures them all.

The most frequent words' rows (--sync-hot-rows, the first rows of the frequency-sorted vocabulary; for hs the
inner nodes nearest the root, the last rows) change in every example's update, as a target, a context or a noise
word, and between two synchronisations each replica moves them most of the way to where they settle: summing
those changes overshoots, averaging them loses what the others learned. As Ji et al. 2016 (Intel's distributed
word2vec) do, those rows alone are combined more often, every --sync-hot-words words: a small all-reduce (2,000
rows of d = 100: 1.6 MB) that lets the whole model be combined rarely.

The schedule: every epoch has the same number of synchronisations on every rank, spread evenly over each rank's
shard, the last at the epoch's end, so the ranks meet however their shards and speeds differ. Each
synchronisation also gathers every rank's position and random state, so rank 0 can checkpoint the state at the
last one: the parameters all ranks share, and where each rank was. A stop (Ctrl-C, SIGTERM) is agreed on at a
synchronisation: a rank that is asked to stop synchronises at once, the others at their next one, and all stop.
"""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist

from .distributed import World
from ..errors import W2VError
from ..model.heads import HSHead

MODES = ("full", "rows")


@torch.no_grad()
def combine(params: list[torch.Tensor], snapshots: list[torch.Tensor], gain: float | str, mode: str,
            group=None) -> tuple[int, bool]:
    """P = P0 + gain / W · Σ_r (P_r − P0) for each parameter P (rows first) and its snapshot P0, the same on every
    rank; then P0 = P. With gain "per-row" each row gets its own gain (row_gain). Returns the bytes this rank put
    into the collectives, and whether the combined change is finite (a NaN or an infinity in any rank's change
    shows in the sum)."""
    world = dist.get_world_size(group)
    sent, finite = 0, True
    for p, p0 in zip(params, snapshots):
        if mode == "full":
            delta = p.sub_(p0)  # (R, D): this rank's change, in place of its parameters (no copy of the matrix)
            rows = None
        else:
            changed = p != p0
            if changed.dim() > 1:
                changed = changed.any(1)
            rows, index_bytes = _union(changed.nonzero().squeeze(1).to(torch.int32), group)  # (n,)
            sent += index_bytes
            if len(rows) == 0:
                continue
            delta = p.index_select(0, rows).sub_(p0.index_select(0, rows))  # (n, D)
        if gain == "per-row":
            squares = _row_norms2(delta)  # (n,) |Δ_r|² of this rank's rows, summed over ranks below
            dist.all_reduce(squares, group=group)
            sent += squares.numel() * squares.element_size()
        dist.all_reduce(delta, group=group)  # Σ_r Δ_r
        if gain == "per-row":
            scale = row_gain(squares, _row_norms2(delta), world) / world  # (n,)
            delta.mul_(scale.view(-1, *[1] * (delta.dim() - 1)))
        else:
            delta.mul_(gain / world)
        if rows is None:
            p0.add_(delta)
            p.copy_(p0)
        else:
            p0.index_add_(0, rows, delta)
            p.index_copy_(0, rows, p0.index_select(0, rows))
        sent += delta.numel() * delta.element_size()
        finite = finite and bool(torch.isfinite(delta).all())
    return sent, finite


def _row_norms2(t: torch.Tensor) -> torch.Tensor:
    return t.square().flatten(1).sum(1) if t.dim() > 1 else t.square()


SAFE_GAIN = 2.0  # a gain above 2 carries a settled row past its mirror image, and it grows (module docstring)


def rule(gain: float | str, world: int) -> tuple[float | str, float]:
    """--sync-gain with W processes: (the gain of the synchronisations, each rank's learning rate in multiples of
    --lr). A number G: G, at W / G times the rate. auto: (W + 2) / 4, at most 2: the average at twice the rate
    with 2 processes, 1.5 at 2.67 times with 4, 2 at W / 2 times from 6 on. per-row: row_gain's, at one
    process's rate."""
    if gain == "per-row":
        return gain, 1.0
    if gain == "auto":
        gain = min(max((world + 2) / 4, 1.0), SAFE_GAIN)
    return gain, world / gain


def row_gain(squares: torch.Tensor, summed: torch.Tensor, world: int) -> torch.Tensor:
    """--sync-gain per-row: the gain of each row, between 1 (average the replicas' changes) and W (add them up).

    squares = Σ_r |Δ_r|², summed = |Σ_r Δ_r|². Where the replicas changed a row the same way (a frequent word:
    each replica moved it most of the way to where the row settles), summed = W · squares, and adding the W
    changes would overshoot W times: that is why summing diverged with 4 processes (a step past the optimum by
    more than twice the distance grows). Where they changed it independently (a rare word seen by one replica,
    or noise), summed ≈ squares, and averaging would throw away (W−1)/W of what was learned: why averaging loses
    quality. gain = W · squares / summed is W for independent changes and 1 for equal ones (clamped to [1, W];
    a row nobody changed gets W, which changes nothing)."""
    ratio = torch.where(summed > 0, squares / summed.clamp_min(torch.finfo(summed.dtype).tiny), 1.0)
    return (world * ratio).clamp_(1.0, float(world))


def combine_rows(params: list[torch.Tensor], snapshots: list[torch.Tensor], rows: list[slice], gain: float | str,
                 mode: str) -> tuple[int, bool]:
    """combine() on the given rows of each parameter (views: the parameters and snapshots change in place)."""
    return combine(_rows(params, rows), _rows(snapshots, rows), gain, mode)


def _rows(tensors: list[torch.Tensor], rows: list[slice]) -> list[torch.Tensor]:
    return [t[r] for t, r in zip(tensors, rows)]


def hot_rows(trainer, n: int) -> tuple[list[slice], list[slice]]:
    """Each trained tensor's n rows that change most, and the others: the most frequent words' rows (the vocabulary
    is sorted by count), or for hs's inner nodes the n nearest the root (the last created)."""
    hot, cold = [], []
    for name, p in trainer.tensors().items():
        rows = p.shape[0]
        k = min(n, rows)
        if name != "input" and isinstance(trainer.model.head, HSHead):
            hot.append(slice(rows - k, rows))
            cold.append(slice(0, rows - k))
        else:
            hot.append(slice(0, k))
            cold.append(slice(k, rows))
    return hot, cold


def _union(mine: torch.Tensor, group) -> tuple[torch.Tensor, int]:
    """The sorted union over ranks of the row ids each changed, and the bytes this rank sent for it: the ids go
    through all_gather, which needs one length, so each rank pads its own to the longest."""
    world = dist.get_world_size(group)
    n = torch.tensor([len(mine)], dtype=torch.int64, device=mine.device)
    counts = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(counts, n, group=group)
    longest = int(torch.stack(counts).max())
    if longest == 0:
        return mine.long(), n.element_size()
    padded = torch.full((longest,), -1, dtype=torch.int32, device=mine.device)
    padded[:len(mine)] = mine
    lists = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(lists, padded, group=group)
    every = torch.cat(lists)
    return torch.unique(every[every >= 0]).long(), n.element_size() + padded.numel() * padded.element_size()


class Replicas:
    """One rank's side of the synchronisations: the snapshot P0, the schedule, the positions gathered."""

    def __init__(self, world: World, trainer):
        cfg = self.cfg = trainer.cfg
        self.world, self.trainer = world, trainer
        self.names = list(trainer.tensors())
        self.params = list(trainer.tensors().values())
        self.snapshots = [p.detach().clone() for p in self.params]
        # the ranks' words per epoch, through the store: this first meeting also checks that every rank came up
        words = world.roll_call("start", str(trainer.epoch_words), deadline=cfg.sync_timeout, what="the start")
        epoch_words = sum(int(w) for w in words)
        self.per_epoch = max(1, math.ceil(epoch_words / (world.size * cfg.sync_words)))  # syncs in each epoch
        self.count = 0  # synchronisations so far, in the whole run
        # each interval between two synchronisations is cut into `ticks` parts, with a synchronisation of the hot
        # rows at each inner cut: the same number on every rank, so that their collectives pair up
        self.hot, self.cold = hot_rows(trainer, cfg.sync_hot_rows)
        self.ticks = max(1, cfg.sync_words // cfg.sync_hot_words) if cfg.sync_hot_rows else 1
        self.hot_done = 0  # hot synchronisations since the last full one
        self.hot_count = 0  # and in this process's run
        self.anchors = self._anchors()  # the hot rows as the last full synchronisation left them, for checkpoints
        self.gathered: list[dict] = []  # on rank 0: every rank's position at the last meeting
        self.consistent = True  # False while the snapshots are half combined (a collective failed mid-way)
        self.seconds, self.bytes = 0.0, 0  # in the collectives, this process
        trainer.world, trainer.global_total = world.size, epoch_words * cfg.epochs
        self.gain, trainer.lr_scale = rule(cfg.sync_gain, world.size)
        trainer.lr = trainer.rate(trainer.words_done)
        trainer.replicas = self

    def restore(self, state: dict) -> None:
        """A resumed run: where the run's synchronisations were (the tensors and positions are loaded)."""
        for s, p in zip(self.snapshots, self.params):
            s.copy_(p)
        self.hot_done, self.anchors = 0, self._anchors()
        self.count = state["world"]["syncs"]
        self.trainer.synced = (state["world"]["words"], self.trainer.words_done)
        self.trainer.lr = self.trainer.rate(self.trainer.words_done)

    # -- when ---------------------------------------------------------------------------------------
    def due(self) -> bool:
        """This rank has passed the next synchronisation point of its epoch (the epoch's end excepted: the
        epoch-end hook takes that one, after the last batch)."""
        t = self.trainer
        done = (t.words_done - t.epoch * t.epoch_words) / max(t.epoch_words, 1)
        target = min(self.per_epoch - 1, math.floor(done * self.per_epoch))
        interval = self.count - t.epoch * self.per_epoch  # this epoch's full synchronisations so far
        if self.ticks > 1:  # the hot rows' synchronisations this rank has passed in the current interval
            tick = math.floor(done * self.per_epoch * self.ticks) - interval * self.ticks
            while self.hot_done < min(tick, self.ticks - 1):
                self.hot_sync()
        return interval < target

    def catch_up(self, signum: int = 0) -> int:
        """At an epoch's end (trainer.epoch is the next one): the epoch's remaining synchronisations."""
        while self.count < self.trainer.epoch * self.per_epoch:
            signum = max(signum, self.sync(signum))
            if signum:
                break
        return signum

    def finish(self) -> None:
        """After the last epoch: one more synchronisation if any rank has trained since its last one (a rank
        that was stopped ahead of its schedule and resumed), so that every replica ends equal."""
        t = self.trainer
        dirty = self.world.roll_call("end", "1" if t.words_done != t.synced[1] else "",
                                     deadline=self.cfg.sync_timeout, what="the end")
        if any(dirty):
            self.sync()

    # -- the synchronisation ------------------------------------------------------------------------
    def hot_sync(self) -> None:
        """Combine the hot rows alone (no meeting through the store, no positions: a checkpoint is taken only at
        a full synchronisation, and holds the hot rows as that one left them)."""
        self.hot_done += 1
        self.hot_count += 1
        what = f"hot sync {self.hot_done} after sync {self.count}"
        start = time.perf_counter()
        try:
            sent, finite = combine_rows(self.params, self.snapshots, self.hot, self.gain, "full")
        except RuntimeError as e:
            raise self.world.lost(e, what) from None
        if not finite:
            raise self._diverged(what)
        self.seconds += time.perf_counter() - start
        self.bytes += sent

    def _combine_all(self) -> tuple[int, bool]:
        """The full synchronisation. With hot rows, gain per-row and 2 processes, only the hot rows get row_gain's
        gain and the others the sum: they are rarer words, which the replicas change independently (a row two
        replicas moved alike is being learned there, not settled), and their own gain held them back. A sum of
        2 can at worst carry a settled row to its mirror image, never further; from 3 processes on a sum grows
        (sg-neg with 4 processes lost a fifth of its analogies with the sum)."""
        gain, mode = self.gain, self.cfg.sync
        if gain != "per-row" or not self.cfg.sync_hot_rows or self.world.size != 2:
            return combine(self.params, self.snapshots, gain, mode)
        hot = combine_rows(self.params, self.snapshots, self.hot, "per-row", mode)
        cold = combine_rows(self.params, self.snapshots, self.cold, float(self.world.size), mode)
        return hot[0] + cold[0], hot[1] and cold[1]

    def _anchors(self) -> list[torch.Tensor]:
        return [t.clone() for t in _rows(self.snapshots, self.hot)]

    def sync(self, signum: int = 0, combine_params: bool = True) -> int:
        """Meet the other ranks, combine the replicas and gather every rank's position; returns the stop signal
        agreed on (the highest asked for: SIGTERM over SIGINT), 0 to go on. Without combine_params only meet
        and gather (the start of training)."""
        t, world, n = self.trainer, self.world, self.count + 1
        what = f"sync {n}" if combine_params else "the first checkpoint"
        if combine_params:
            while self.hot_done < self.ticks - 1:  # the interval's hot synchronisations this rank has not had
                self.hot_sync()
        start = time.perf_counter()
        world.roll_call(f"sync/{n if combine_params else 0}", deadline=self.cfg.sync_timeout, what=what)
        if combine_params and n > 2:
            world.forget(f"sync/{n - 2}")  # every rank has passed it: they all posted n - 1
        met = time.perf_counter()
        mine = {**t.position_state(), "signal": signum}
        every: list = [None] * world.size
        try:
            dist.all_gather_object(every, mine)
            sent, finite = 0, True
            if combine_params:
                self.consistent = False
                sent, finite = self._combine_all()
                self.count, self.consistent = n, True
                self.hot_done, self.anchors = 0, self._anchors()
        except RuntimeError as e:
            raise world.lost(e, what) from None
        done = time.perf_counter()
        if not finite:
            raise self._diverged(f"sync {n}")
        self.seconds += done - met
        self.bytes += sent
        signum = max(e.pop("signal") for e in every)
        t.synced = (sum(e["position"]["words_done"] for e in every), t.words_done)
        self.gathered = every if world.rank == 0 else []
        if combine_params:
            t.record("sync", sync=n, wait_s=round(met - start, 4), sync_s=round(done - met, 4), bytes=sent)
        return signum

    def summary(self) -> str:
        """For train's last line: how the processes combined their replicas (rule), and what it cost."""
        hot = f" and {self.hot_count} of the hot rows" if self.hot_count else ""
        gain = "per-row gains" if self.gain == "per-row" else f"gain {self.gain:g}"
        return (f"{self.world.size} processes ({gain} at {self.trainer.lr_scale:.3g} x lr), {self.count} "
                f"synchronisations{hot}: {self.seconds:.1f} s in collectives, {self.bytes / 2**20:,.0f} MiB sent "
                "by rank 0")

    def _diverged(self, what: str) -> W2VError:
        err = W2VError(f"training diverged: the replicas' combined change became NaN or infinite at {what} "
                       f"(learning rate {self.trainer.lr:.3g}); the last good checkpoint is kept; retry with a lower "
                       "--lr" + (" or a lower --sync-gain" if self.gain != 1 else ""))
        err.quiet = self.world.rank != 0  # every rank finds it: rank 0 says it
        return err

    # -- the checkpoint -----------------------------------------------------------------------------
    def checkpoint(self) -> dict | None:
        """On rank 0, the state at the last synchronisation: the snapshot every rank shares, rank 0's position
        where a single process keeps its own, and every rank's under "ranks". None on the other ranks, and
        where a failed collective left the snapshot half combined."""
        if self.world.rank or not self.consistent or not self.gathered:
            return None
        tensors = self.snapshots
        if self.hot_done:  # the hot rows have moved on since the last full synchronisation: take them as it left them
            tensors = [s.clone() for s in self.snapshots]
            for t, r, a in zip(tensors, self.hot, self.anchors):
                t[r] = a
        st = self.trainer.state(dict(zip(self.names, tensors)))
        st.update(self.gathered[0])
        st["ranks"] = self.gathered
        st["world"] = {"size": self.world.size, "syncs": self.count, "words": self.trainer.synced[0]}
        return st
