"""The vocabulary pass's speed on each text given (bytes/s and tokens/s, median of 5 after a first pass that loads the
compiled loop and the page cache), in one process, with this checkout's package or, with --src, another checkout's
(a flat w2v_nce/vocab.py or a staged w2v_nce/corpus/vocab.py).

    python benchmarks/vocab_speed.py KOREAN.txt ENGLISH.txt [--src DIR] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("texts", nargs="+")
    ap.add_argument("--src", default=None, help="a checkout whose package to time (default: the installed one)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    if a.src:
        sys.path.insert(0, a.src)  # its own modules first: a checkout without corpus/ must not borrow ours
    if a.src is None or os.path.isdir(os.path.join(a.src, "w2v_nce", "corpus")):
        from w2v_nce.corpus import vocab
    else:
        from w2v_nce import vocab
    out = tempfile.mkdtemp()
    for path in a.texts:
        vocab.build(path, os.path.join(out, "ids"), 5)
        seconds = []
        for _ in range(a.rounds):
            start = time.perf_counter()
            _, stats = vocab.build(path, os.path.join(out, "ids"), 5)
            seconds.append(time.perf_counter() - start)
        s = statistics.median(seconds)
        print(f"{vocab.__file__}: {path}: {s:.3f} s, {os.path.getsize(path) / s / 1e6:.1f} MB/s, "
              f"{stats['tokens'] / s / 1e6:.2f}M tokens/s, {stats['distinct']:,} distinct")


if __name__ == "__main__":
    main()
