"""A training run: its directory, the trainer and its loop, the lifecycle (signals, hooks, failures), resuming,
continued training, and several processes (torchrun)."""
