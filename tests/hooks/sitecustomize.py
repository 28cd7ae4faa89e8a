"""Test hooks of the torchrun tests (tests/test_distributed.py), which put this folder first on the PYTHONPATH of
every process they start, so that Python imports this file at start-up. Set by the environment:

- W2V_NCE_TEST_EXIT_AT_SYNC=RANK:N: that rank exits at once (os._exit(9), as a crash would) when it reaches
  synchronisation N, in every attempt of a torchrun job;
- W2V_NCE_DEBUG_SYNC_DIR=DIR: each rank appends to DIR/rankR.jsonl a hash of its parameters after each
  synchronisation (and of its vocabulary and noise table at the first; a line of its own after each combination of
  the hot rows), so that a test can check that the ranks agree.
"""

import hashlib
import os


def digest(tensors, text: str = "") -> str:
    """A hash of tensors' bytes (and of a text): what the ranks' logs compare."""
    h = hashlib.sha256(text.encode())
    for t in tensors:
        h.update(t.detach().cpu().contiguous().view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()[:16]


if os.environ.get("W2V_NCE_TEST_EXIT_AT_SYNC") or os.environ.get("W2V_NCE_DEBUG_SYNC_DIR"):
    import json
    from pathlib import Path

    import torch

    from w2v_nce.run import distributed, replicas

    def write(rep, line: dict) -> None:
        where = os.environ.get("W2V_NCE_DEBUG_SYNC_DIR")
        if where:
            with open(Path(where) / f"rank{rep.world.rank}.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")

    exit_at = os.environ.get("W2V_NCE_TEST_EXIT_AT_SYNC")
    exit_at = tuple(map(int, exit_at.split(":"))) if exit_at else None
    roll_call, sync, hot_sync = distributed.World.roll_call, replicas.Replicas.sync, replicas.Replicas.hot_sync

    def exiting_roll_call(self, name, *args, **kwargs):
        if exit_at is not None and name.startswith("sync/") and (self.rank, int(name[5:])) == exit_at:
            os._exit(9)
        return roll_call(self, name, *args, **kwargs)

    def logged_sync(self, signum=0, combine_params=True):
        agreed = sync(self, signum, combine_params)
        if combine_params:
            line = {"sync": self.count, "params": digest(self.params)}
            if self.count == 1:
                head, vocab = self.trainer.model.head, self.trainer.vocab
                line.update(vocab=digest([torch.as_tensor(vocab.counts)], "\n".join(vocab.words)),
                            noise=digest([head.sampler.prob, head.sampler.alias]) if hasattr(head, "sampler") else None,
                            words=self.trainer.epoch_words)
            write(self, line)
        return agreed

    def logged_hot_sync(self):
        hot_sync(self)
        write(self, {"hot": self.hot_count, "rows": digest([t[r] for t, r in zip(self.params, self.hot)])})

    distributed.World.roll_call = exiting_roll_call
    replicas.Replicas.sync = logged_sync
    replicas.Replicas.hot_sync = logged_hot_sync
