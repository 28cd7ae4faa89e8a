"""One rank of tests/test_distributed.py's exact test of replicas.combine, in a module of its own: the spawned
processes import it, and it imports only torch and the module under test (not gensim, as the test module does)."""

from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from w2v_nce.run.replicas import Replicas, combine

P0 = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
BIAS0 = [0.5, 0.25, 1.0]
# what each rank learned since the last synchronisation: rank 0 row 0 and bias 0, rank 1 rows 0 and 2; row 1 and
# biases 1 and 2 are nobody's
DELTAS = {0: ([[0.5, 0.5], [0, 0], [0, 0]], [0.25, 0, 0]), 1: ([[0.25, -0.5], [0, 0], [-1, -1]], [0, 0, 0])}
# for --sync-gain per-row: row 0 changed partly alike, row 1 and bias 0 alike, row 2 by rank 1 alone
ALIKE = {0: ([[1, 0], [1, 1], [0, 0]], [0.5, 0, 0]), 1: ([[1, 1], [1, 1], [0, -2]], [0.5, 0, 0])}
# for the full synchronisation with hot rows (rows 0 and 1): row 2 and bias 2, not hot, changed alike
SPLIT = {0: ([[1, 0], [1, 1], [1, 1]], [0.5, 0, 0.5]), 1: ([[1, 1], [1, 1], [1, 1]], [0.5, 0, 0.5])}


def run(rank: int, port: int, out: str) -> None:
    """Each mode and gain from the same start, then a NaN in rank 1's change; the results to out/RANK.pt."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    results = {}
    for mode in ("full", "rows"):
        for key, gain, deltas in ((1.0, 1.0, DELTAS), (2.0, 2.0, DELTAS), ("per-row", "per-row", DELTAS),
                                  ("per-row-alike", "per-row", ALIKE)):
            weight, bias = torch.tensor(P0), torch.tensor(BIAS0)
            snapshots = [weight.clone(), bias.clone()]
            weight += torch.tensor(deltas[rank][0], dtype=torch.float32)
            bias += torch.tensor(deltas[rank][1])
            sent, finite = combine([weight, bias], snapshots, gain, mode)
            results[mode, key] = (weight, bias, snapshots, sent, finite)
        for key, size in (("split", 2), ("split-3", 3)):  # the rule of 2 processes, and of more (told 3)
            weight, bias = torch.tensor(P0), torch.tensor(BIAS0)
            snapshots = [weight.clone(), bias.clone()]
            weight += torch.tensor(SPLIT[rank][0], dtype=torch.float32)
            bias += torch.tensor(SPLIT[rank][1])
            replicas = SimpleNamespace(cfg=SimpleNamespace(sync=mode, sync_hot_rows=2), gain="per-row",
                                       params=[weight, bias], snapshots=snapshots, hot=[slice(0, 2)] * 2,
                                       cold=[slice(2, 3)] * 2, world=SimpleNamespace(size=size))
            results[mode, key] = (weight, bias, Replicas._combine_all(replicas)[1])
        nan = torch.tensor(P0)
        snapshot = nan.clone()
        nan[1, 1] = float("nan") if rank else nan[1, 1] + 1
        results[mode, "nan"] = combine([nan], [snapshot], 1.0, mode)[1]
    torch.save(results, Path(out) / f"{rank}.pt")
    dist.destroy_process_group()
