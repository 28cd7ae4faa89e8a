"""The long-tail corpus of issue 23 (docs/benchmarks-log.md section 9, `make bench-scale`): N distinct tokens x0000001abc,
x0000002abc, ... interleaved with the first N tokens of a real text, 2,000 tokens a line. Half its tokens are each
seen once, so its distinct tokens are about N plus the real text's: what a crawl's misspellings, numbers and URLs
do to the vocabulary pass.

    python benchmarks/longtail.py ../shared/corpora/wiki100m.txt.gz /tmp/w2v-scale/longtail.txt --tokens 10000000
"""

from __future__ import annotations

import argparse
import gzip
import itertools
from pathlib import Path


def real_tokens(path: Path):
    """The text's whitespace-separated tokens, in order (line breaks dropped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield from line.split()


def write(tokens, out: Path, n: int, per_line: int = 2000, every: int = 1) -> int:
    """n tokens of `tokens`, a distinct x{i:07d}abc after every `every` of them, about per_line tokens a line;
    returns the tokens written."""
    real = itertools.islice(tokens, n)
    written = distinct = 0
    with open(out, "w", encoding="utf-8") as f:
        while True:
            chunk = list(itertools.islice(real, per_line * every // (every + 1)))
            if not chunk:
                return written
            line = []
            for i, t in enumerate(chunk):
                line.append(t)
                if (i + 1) % every == 0:
                    distinct += 1
                    line.append(f"x{distinct:07d}abc")
            f.write(" ".join(line) + "\n")
            written += len(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, help="the real text (.gz or plain)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--tokens", type=int, default=10_000_000,
                    help="real tokens (and as many distinct ones, or 1/EVERY)")
    ap.add_argument("--per-line", type=int, default=2000)
    ap.add_argument("--every", type=int, default=1, help="a distinct token after every EVERY real ones (phrases: 2, "
                    "so that pairs of real tokens remain)")
    args = ap.parse_args()
    n = write(real_tokens(args.corpus), args.out, args.tokens, args.per_line, args.every)
    print(f"{args.out}: {n:,} tokens, {args.out.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
