"""Training on several processes (torchrun): this process's place in the job, the process group, sending rank 0's
data to the others, and noticing a rank that stopped. replicas.py keeps the models in step.

torchrun starts one process per GPU or per group of CPU threads, on one machine or several, and tells each its
RANK, WORLD_SIZE and LOCAL_RANK in the environment. Without them (or with WORLD_SIZE 1) `train` is the
single-process training of training.py, unchanged.

- Rank 0 alone reads the corpus and writes the run directory. It sends every other rank, over the process group
  (the machines need not share a filesystem), the resolved config, the vocabulary and its shard of the encoded
  corpus (every W-th block of 100,000 tokens: shard_blocks); the noise table is built from the counts, so it
  is the same everywhere.
- Before each collective the ranks meet in a roll call through torchrun's key-value store: each posts that it
  has arrived, then waits for the others while watching their heartbeats (a thread in each rank bumps a counter
  in the store) and an abort notice that a failing rank posts. So a dead or frozen rank is named within
  seconds (before torchrun's 30 s grace after a worker's death runs out), a hung one within --sync-timeout, a
  failed one at once; and no rank waits inside a collective for a peer that is gone (gloo would raise with
  the peer's address, not its rank; NCCL's watchdog would end the process without a word).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from . import rundir
from ..errors import UsageError, W2VError

# A heartbeat that has not moved for DEAD_AFTER_S (or a quarter of --sync-timeout, if less): the rank is dead or
# frozen. Under torchrun's 30 s between its SIGTERM and its SIGKILL to the survivors of a dead worker, so they can
# still say which rank it was and checkpoint; and long enough that a busy process still beats (the thread needs
# the GIL for microseconds a beat; the compiled step and torch's ops release it).
DEAD_AFTER_S = 10.0
POLL_S = (0.002, 0.1)  # a roll call polls the store at the first interval, growing to the second


class PeerLost(W2VError):
    """Ranks stopped answering: dead or frozen (no heartbeat), or hung (not at a roll call in time). The lowest
    rank still running reports it; the others exit quietly with the same code."""

    def __init__(self, ranks: list[int], why: str, world: "World"):
        names = ", ".join(map(str, ranks))
        super().__init__(f"rank{'s' if len(ranks) > 1 else ''} {names} stopped answering ({why})")
        self.ranks = ranks
        self.quiet = world.rank != min(set(range(world.size)) - set(ranks))


class PeerFailed(W2VError):
    """Another rank failed and posted why; it reports its own error, so this one exits quietly."""

    def __init__(self, rank: int, message: str, code: int):
        super().__init__(f"rank {rank} failed: {message}", code)
        self.rank, self.quiet = rank, True


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    local_size: int  # processes on this machine
    attempt: int  # torchrun's restart count: the keys of an earlier attempt are never read
    timeout: float = 300.0
    dead_after: float = DEAD_AFTER_S
    store: object = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _seen: dict = field(default_factory=dict)  # rank -> (its last heartbeat count, when that changed)

    # -- joining and leaving ------------------------------------------------------------------------
    def join(self, timeout: float) -> None:
        """The process group: gloo for CPU tensors, NCCL for CUDA ones where there is a GPU (each process uses
        the GPU of its local rank); `timeout` bounds every collective."""
        cuda = torch.cuda.is_available()
        if cuda and self.local_rank < torch.cuda.device_count():
            torch.cuda.set_device(self.local_rank)
            _numba_device(self.local_rank)
        env, wait = os.environ, datetime.timedelta(seconds=timeout)
        try:
            # torchrun's store, which its agent serves (so it still answers when rank 0 dies), and which it keeps
            # across the restarts of --max-restarts: without a prefix per attempt, a restarted rank read the
            # address of a dead one from the process group's keys of the attempt before
            agent = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
            tcp = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), self.size,
                                is_master=self.rank == 0 and not agent, timeout=wait)
            self.store = dist.PrefixStore(f"w2v-nce/{self.attempt}/", tcp)
            dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", store=self.store, rank=self.rank,
                                    world_size=self.size, timeout=wait)
        except KeyError as e:
            raise UsageError(f"{e.args[0]} is not set: start the processes with torchrun") from None
        except Exception as e:  # a rendezvous that failed or timed out: torch raises several types
            first = "" if self.rank == 0 else " (where rank 0 stopped first, its machine says why)"
            raise W2VError(f"rank {self.rank} of {self.size} could not join the job: {_first_line(e)}{first}") from None
        self.patience(timeout)
        threading.Thread(target=self._beat, daemon=True, name="w2v-nce-heartbeat").start()

    def patience(self, timeout: float) -> None:
        """Wait `timeout` seconds for a rank at a roll call, and a quarter of that (at most DEAD_AFTER_S) for its
        heartbeat."""
        self.timeout, self.dead_after = timeout, min(DEAD_AFTER_S, timeout / 4)

    def leave(self, done: bool = True) -> None:
        """Stop the heartbeat; after a successful run also close the process group (after a failure a collective
        may still hang in it, and the process exits anyway)."""
        self._stop.set()
        if done and dist.is_initialized():
            dist.destroy_process_group()

    def _key(self, name: str) -> str:
        return f"run/{name}"  # the process group's keys are beside these, under default_pg/

    def _beat(self) -> None:
        key = self._key(f"beat/{self.rank}")
        while True:
            try:
                self.store.add(key, 1)
            except Exception:  # the store is gone: the roll call will say so
                return
            if self._stop.wait(self.dead_after / 10):
                return

    # -- meeting ------------------------------------------------------------------------------------
    def roll_call(self, name: str, value: str = "", deadline: float | None = None, what: str = "") -> list[str]:
        """Post that this rank reached `name` (with `value`), wait until every rank has, and return their values
        by rank. PeerLost names the ranks missing when their heartbeat stops, or after `deadline` seconds;
        PeerFailed relays a rank's abort notice."""
        keys = [self._key(f"{name}/{r}") for r in range(self.size)]
        start, pause = time.monotonic(), POLL_S[0]
        try:
            self.store.set(keys[self.rank], value)
            while not self.store.check(keys):
                self._check_abort()
                missing = [r for r in range(self.size) if not self.store.check([keys[r]])]
                gone = self._dead(missing)
                if gone:
                    raise PeerLost(gone, f"no heartbeat for {self.dead_after:g} s{_at(what)}", self)
                if deadline is not None and time.monotonic() - start > deadline:
                    raise PeerLost(missing, f"no {what or name} within {deadline:g} s", self)
                time.sleep(pause)
                pause = min(2 * pause, POLL_S[1])
            self._check_abort()
            return [self.store.get(k).decode() for k in keys]
        except W2VError:
            raise
        except Exception as e:  # the store does not answer: torchrun's agent is gone
            raise W2VError(f"lost torchrun's store{_at(what)}: {_first_line(e)}") from None

    def forget(self, name: str) -> None:
        """Drop this rank's key of a roll call every rank is past (the store would grow by one per sync)."""
        try:
            self.store.delete_key(self._key(f"{name}/{self.rank}"))
        except Exception:
            pass

    def _dead(self, ranks: list[int]) -> list[int]:
        """Those of `ranks` whose heartbeat has not moved for dead_after seconds since this rank started watching."""
        now, dead = time.monotonic(), []
        for r in ranks:
            beats = self.store.add(self._key(f"beat/{r}"), 0)
            last = self._seen.get(r)
            if last is None or last[0] != beats:
                self._seen[r] = (beats, now)
            elif now - last[1] > self.dead_after:
                dead.append(r)
        return dead

    def lost(self, e: Exception, what: str) -> W2VError:
        """A collective failed (gloo raises at once when a peer's connection closes): name the rank whose heartbeat
        stops, if one does within dead_after."""
        others = [r for r in range(self.size) if r != self.rank]
        end = time.monotonic() + 1.5 * self.dead_after
        try:
            while time.monotonic() < end:
                self._check_abort()
                gone = self._dead(others)
                if gone:
                    return PeerLost(gone, f"its connection closed{_at(what)}", self)
                time.sleep(POLL_S[1])
        except W2VError as relayed:
            return relayed
        except Exception:
            pass
        return W2VError(f"the collective{_at(what)} failed: {_first_line(e)}")

    def abort(self, e: BaseException) -> None:
        """Tell the other ranks that this one stops, and why (they stop at their next roll call)."""
        if self.store is None or isinstance(e, (PeerLost, PeerFailed)):
            return
        code = getattr(e, "code", 1) if isinstance(e, W2VError) else 1
        message = str(e) if isinstance(e, W2VError) else f"{type(e).__name__}: {_first_line(e)}"
        try:
            if not self.store.check([self._key("abort")]):
                self.store.set(self._key("abort"), json.dumps({"rank": self.rank, "code": code, "message": message}))
        except Exception:
            pass

    def _check_abort(self) -> None:
        if self.store.check([self._key("abort")]):
            notice = json.loads(self.store.get(self._key("abort")))
            if notice["rank"] != self.rank:
                failed = PeerFailed(notice["rank"], notice["message"], notice["code"])
                # rank 0 speaks for the job: it repeats what a rank of another machine said there
                failed.quiet = self.rank != 0 or notice["rank"] < self.local_size
                raise failed

    # -- what the launch looks like ------------------------------------------------------------------
    def place(self, device: torch.device) -> torch.device:
        """This rank's device: the GPU of its local rank."""
        if device.type != "cuda":
            return device
        if self.local_rank >= torch.cuda.device_count():
            raise UsageError(f"local rank {self.local_rank} has no GPU of its own ({torch.cuda.device_count()} "
                             f"visible): start at most that many processes per machine, or pass --device cpu")
        return torch.device("cuda", self.local_rank)

    def threads(self, threads: int) -> int:
        """--threads 0 shares the machine's cores among its processes (torchrun starts local_size of them)."""
        return threads or max(1, (os.cpu_count() or 1) // self.local_size)


def from_env() -> World | None:
    """This process's place in a torchrun job of 2 or more processes, or None."""
    env = os.environ
    size = int(env.get("WORLD_SIZE") or 1)
    if size <= 1 or "RANK" not in env:
        return None
    return World(rank=int(env["RANK"]), size=size, local_rank=int(env.get("LOCAL_RANK") or 0),
                 local_size=int(env.get("LOCAL_WORLD_SIZE") or size),
                 attempt=int(env.get("TORCHELASTIC_RESTART_COUNT") or 0))


def env_rank() -> int:
    """This process's rank in a torchrun job, 0 outside one (before the process group exists)."""
    return from_env().rank if from_env() is not None else 0


def resume_command(run_dir, world_size: int, local_size: int | None = None) -> str:
    """How to continue a run of `world_size` processes: torchrun with as many (the shards and random streams
    are per rank), on one machine unless this job spans several."""
    if world_size <= 1:
        return rundir.resume_command(run_dir)
    if local_size is None or local_size >= world_size:
        return f"torchrun --standalone --nproc-per-node {world_size} -m w2v_nce train --resume {run_dir}"
    return (f"torchrun --nnodes {world_size // local_size} --node-rank 0 --nproc-per-node {local_size} --master-addr "
            f"HOST --master-port PORT -m w2v_nce train --resume {run_dir} here (HOST: this machine), and the same "
            "with --node-rank 1, 2, ... on the others")


# -- rank 0's data to every rank ------------------------------------------------------------------------

SHARD_BLOCK = 100_000  # tokens


def shard_blocks(n: int, size: int) -> list[list[tuple[int, int]]]:
    """Rank r's shard of the encoded corpus's n tokens: blocks r, r + W, r + 2W, ... of SHARD_BLOCK tokens (of n / W
    when that is fewer), so that every shard spans the whole corpus. Contiguous halves gave each replica its own
    part of Wikipedia's article order, and the combined model lost on SimLex whatever the synchronisation; on the
    corpus with its articles shuffled the loss was gone."""
    block = max(1, min(SHARD_BLOCK, n // size))
    starts = range(0, n, block)
    return [[(s, min(s + block, n)) for s in starts[r::size]] for r in range(size)]


def _cut(ids: np.ndarray, blocks: list[tuple[int, int]]) -> np.ndarray:
    return np.concatenate([ids[a:b] for a, b in blocks]) if blocks else ids[:0].copy()


def share(world: World, payload: dict | None = None, tensors: dict | None = None,
          ids: np.ndarray | None = None) -> tuple[dict, dict, np.ndarray]:
    """Rank 0's payload (picklable), tensors (by name, on the CPU) and each rank's shard of `ids`, on every rank.
    The others wait for rank 0 to have prepared them for as long as its heartbeat goes on."""
    world.roll_call("ready", what="the vocabulary")
    try:
        box = [None if world.rank else {**payload, "tensors": {k: (t.shape, t.dtype) for k, t in tensors.items()},
                                        "blocks": shard_blocks(len(ids), world.size)}]
        dist.broadcast_object_list(box, src=0)
        payload = box[0]
        if world.rank:
            tensors = {k: torch.empty(shape, dtype=dtype) for k, (shape, dtype) in payload["tensors"].items()}
        for t in tensors.values():
            dist.broadcast(t, src=0)
        blocks = payload["blocks"]
        if world.rank == 0:
            for r in range(1, world.size):
                dist.send(torch.from_numpy(_cut(ids, blocks[r])), dst=r)  # a copy: ids is read-only
            shard = _cut(ids, blocks[0])
        else:
            recv = torch.empty(sum(b - a for a, b in blocks[world.rank]), dtype=torch.int32)
            dist.recv(recv, src=0)
            shard = recv.numpy()
    except RuntimeError as e:
        raise world.lost(e, "sending the corpus") from None
    return payload, tensors, shard


def _numba_device(index: int) -> None:
    """The fused CUDA step (numba) launches on numba's current device, which is not torch's: make it this rank's
    GPU, before the kernels' self-check compiles them. Without numba's CUDA target, nothing to do (the PyTorch
    step runs)."""
    try:
        from numba import cuda
        if cuda.is_available():
            cuda.select_device(index)
    except Exception:  # no numba-cuda, or no driver it can use: step.plan.make_plan says so and falls back
        pass


def _at(what: str) -> str:
    return f" at {what}" if what else ""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
