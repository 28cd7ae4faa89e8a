"""The time of one synchronisation against the matrix size, on this machine's gloo (docs/benchmarks-log.md section 7).

    python benchmarks/sync_cost.py [--world 2] [--vocab 10000 100000 1000000] [--dim 100 300] [--repeats 3]

W processes (torch.multiprocessing, gloo over loopback) each hold two V x D float32 matrices (the input vectors and
the output rows) and their snapshots, change a fraction of the rows, and run replicas.combine, the function
training runs at each synchronisation: `full` all-reduces both matrices whole, `rows` first gathers which rows
changed and all-reduces those. Prints one markdown row per (V, D, mode, fraction): the median seconds of
`repeats` synchronisations and the bytes each rank sent.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from w2v_nce.run.replicas import combine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cases: list, repeats: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(rank)
    for v, d, mode, frac in cases:
        params = [torch.zeros(v, d), torch.zeros(v, d)]  # (V, D) the input vectors and the output rows
        snaps = [p.clone() for p in params]
        n = max(1, int(frac * v))
        times, sent = [], 0
        for _ in range(repeats):
            for p in params:  # this rank's change since the last synchronisation: n rows, some of them shared
                rows = torch.randperm(v, generator=g)[:n]
                p.index_add_(0, rows, torch.rand(n, d, generator=g))
            dist.barrier()
            start = time.perf_counter()
            sent, _ = combine(params, snaps, 1.0, mode)
            times.append(time.perf_counter() - start)
        if rank == 0:
            out.put((v, d, mode, frac, statistics.median(times), sent))
        del params, snaps
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--vocab", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.5],
                    help="for --sync rows: the fraction of rows each rank changed")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cases = [(v, d, "full", 1.0) for v in a.vocab for d in a.dim]
    cases += [(v, d, "rows", f) for v in a.vocab for d in a.dim for f in a.fractions]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    mp.spawn(_worker, args=(a.world, _free_port(), cases, a.repeats, out), nprocs=a.world)
    print("| W | V | D | mode | rows changed per rank | MB per matrix pair | sent per rank (MB) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    while not out.empty():
        v, d, mode, frac, sec, sent = out.get()
        print(f"| {a.world} | {v:,} | {d} | {mode} | {frac:.0%} | {2 * v * d * 4 / 2**20:,.1f} | "
              f"{sent / 2**20:,.1f} | {sec:.3f} |")


if __name__ == "__main__":
    main()
