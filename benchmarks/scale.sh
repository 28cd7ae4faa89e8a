#!/usr/bin/env bash
# `make bench-scale` (issue 23, BENCHMARKS.md section 9): the vocabulary pass and one training epoch of cbow-neg on
# 1 GB of text, the benchmark corpus ten times over (170M tokens), and on a long-tail corpus (the first 90 MB of it
# with every other token made unique: 10M+ distinct tokens); words/s, peak memory (/usr/bin/time's maximum resident
# set) and the run directory's disk. Work files in $WORK (default /tmp/w2v-scale, about 3 GB).
set -euo pipefail
CORPUS=${CORPUS:-../shared/corpora/wiki100m.txt.gz}
WORK=${WORK:-/tmp/w2v-scale}
mkdir -p "$WORK"
[ -s "$WORK/x10.txt" ] || for i in $(seq 10); do zcat "$CORPUS"; done > "$WORK/x10.txt"
[ -s "$WORK/tail.txt" ] || { zcat "$CORPUS" | head -c 90000000 || true; } | awk '{for (i = 1; i <= NF; i += 2) $i = $i "_" NR "_" i; print}' > "$WORK/tail.txt"
for name in x10 tail; do
  rm -rf "$WORK/run-$name"
  /usr/bin/time -f "peak RSS %M KB, wall %e s" w2v-nce train "$WORK/$name.txt" --config cbow-neg --epochs 1 \
    --keep-corpus --no-progress --out "$WORK/run-$name" 2>&1 | grep -v "^note:"
  echo "$name: text $(du -h "$WORK/$name.txt" | cut -f1), run directory $(du -sh "$WORK/run-$name" | cut -f1)" \
    "(corpus.ids $(du -h "$WORK/run-$name/corpus.ids" | cut -f1))"
done
