"""The whole suite's kernels compiled beside it (tests/prewarm.py): started once the tests are collected, when they are
most of the suite, stopped when it ends."""

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHOLE = 500  # tests collected: a run of one file or a few tests compiles what it needs itself


def pytest_collection_finish(session):
    if len(session.items) < WHOLE or os.environ.get("W2V_NCE_PREWARM") == "0" or os.name != "posix":
        return
    # a process group of its own, to stop it with its child, but not a session: Linux shares the CPU between
    # sessions (autogroups) before it reads nice, and the exact softmax's test, whose torch threads meet at every
    # step, took 165 s instead of 18 beside a compile in a session of its own, at nice 5 as at 19
    session.config.w2v_prewarm = subprocess.Popen(
        [sys.executable, "-m", "tests.prewarm"], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=os.setpgrp)


def pytest_sessionfinish(session):
    p = getattr(session.config, "w2v_prewarm", None)
    if p is not None and p.poll() is None:  # still compiling (a suite stopped early): it and its child
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
