#!/usr/bin/env bash
# `make bench-scale` (issue 23, docs/benchmarks-log.md section 9): the vocabulary pass and one training epoch of cbow-neg on
# 1 GB of text, the benchmark corpus ten times over (170M tokens), and on the long-tail corpus (benchmarks/longtail.py:
# its first 10M tokens each followed by a distinct x0000001abc, 10.2M distinct tokens) with the default
# --vocab-memory (512M: past it, counted in parts on disk and read twice) and with one big enough for one pass;
# words/s, peak memory (/usr/bin/time's maximum resident set) and the run directory's disk. Then the vocabulary pass
# alone on the benchmark corpus, .gz and plain, best of 3. Work files in $WORK (default /tmp/w2v-scale, about 3 GB).
set -euo pipefail
CORPUS=${CORPUS:-../shared/corpora/wiki100m.txt.gz}
WORK=${WORK:-/tmp/w2v-scale}
PYTHON=${PYTHON:-python3}
mkdir -p "$WORK"
[ -s "$WORK/x10.txt" ] || for i in $(seq 10); do zcat "$CORPUS"; done > "$WORK/x10.txt"
[ -s "$WORK/longtail.txt" ] || "$PYTHON" benchmarks/longtail.py "$CORPUS" "$WORK/longtail.txt" --tokens 10000000
run() {  # name, text, flags
  local name=$1 text=$2
  shift 2
  rm -rf "$WORK/run-$name"
  /usr/bin/time -f "peak RSS %M KB, wall %e s" w2v-nce train "$text" --config cbow-neg --epochs 1 --keep-corpus \
    --no-progress --out "$WORK/run-$name" "$@" 2>&1 | grep -v "^note:"
  echo "$name: text $(du -h "$text" | cut -f1), run directory $(du -sh "$WORK/run-$name" | cut -f1)" \
    "(corpus.ids $(du -h "$WORK/run-$name/corpus.ids" | cut -f1))"
}
run x10 "$WORK/x10.txt"
run longtail "$WORK/longtail.txt"
run longtail-one-pass "$WORK/longtail.txt" --vocab-memory 64G
cmp "$WORK/run-longtail/vocab.tsv" "$WORK/run-longtail-one-pass/vocab.tsv"
cmp "$WORK/run-longtail/corpus.ids" "$WORK/run-longtail-one-pass/corpus.ids"
echo "longtail: vocab.tsv and corpus.ids equal with and without the bound"
[ -s "$WORK/wiki.txt" ] || zcat "$CORPUS" > "$WORK/wiki.txt"
"$PYTHON" - "$CORPUS" "$WORK/wiki.txt" "$WORK/pass.ids" <<'EOF'
import sys, time
from w2v_nce.corpus import vocab
from w2v_nce.config import Config, parse_size
for path in sys.argv[1:3]:
    times = []
    for _ in range(4):  # the first loads the compiled loop and the page cache
        start = time.perf_counter()
        vocab.build(path, sys.argv[3], 5, memory=parse_size(Config().vocab_memory))
        times.append(time.perf_counter() - start)
    print(f"vocabulary pass, {path}: best of 3 {min(times[1:]):.2f} s")
EOF
rm -f "$WORK/pass.ids"
