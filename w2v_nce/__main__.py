"""`python -m w2v_nce`: the CLI, for launchers that run a module (torchrun -m w2v_nce train ...)."""

from .cli import main

main()
