#!/usr/bin/env bash
# `make bench-phrases` (issue 24, docs/benchmarks-log.md section 10): `w2v-nce phrases` against word2vec.c's word2phrase and
# gensim's Phrases + FrozenPhrases.
#   equality  the first 20 MB of the corpus (and a line break: word2phrase drops a last token that none follows) at
#             word2phrase's defaults (one pass, threshold 100, min-count 5): our tokens against word2phrase's, each
#             difference shown; then two passes (200, then 100) against word2phrase run twice
#   speed     one pass of each tool on that slice, side by side, twice: wall time of the whole command, words/s
#             (the slice's tokens over it) and peak memory (/usr/bin/time's maximum resident set)
#   quality   the whole corpus, two phrase passes (200, then 100), then sg-neg and sg-nce 5 epochs (ours: `train
#             --phrases 2`, 2 threads), word2phrase x2 + word2vec (sg, negative sampling) and gensim Phrases x2 +
#             Word2Vec at the same settings; the phrase analogies and questions-words, with the coverage, under nice;
#             and our two passes over the whole corpus against word2phrase's
#   memory    --memory: a long-tail text (benchmarks/longtail.py --every 2: the first 10M tokens of the corpus, a
#             distinct token after every second one) and the whole corpus in two passes, each at the default bound
#             (512M), at a low one and with no bound in effect (64G): time, peak memory, and the outputs compared
# word2vec.c's tools are taken from $W2V (default /tmp/word2vec-c); with W2V_SRC set to a checkout of
# tmikolov/word2vec they are built there first. Work files in $WORK (default /tmp/w2v-phrases, about 1 GB).
set -euo pipefail
CORPUS=${CORPUS:-../shared/corpora/wiki100m.txt.gz}
QUESTIONS=${QUESTIONS:-../shared/corpora/questions-phrases.txt}
WORK=${WORK:-/tmp/w2v-phrases}
W2V=${W2V:-/tmp/word2vec-c}
PYTHON=${PYTHON:-python3}
W2V_NCE=${W2V_NCE:-w2v-nce}
STAGES=${STAGES:-equality speed quality memory}
NICE=${NICE:-nice -n 10}
PEERS="$PYTHON $(dirname "$0")/phrases_peers.py"
mkdir -p "$WORK" "$W2V"
if [ -n "${W2V_SRC:-}" ]; then
  for tool in word2phrase word2vec; do
    gcc "$W2V_SRC/$tool.c" -o "$W2V/$tool" -lm -pthread -O3 -march=native -Wall -funroll-loops -Wno-unused-result
  done
fi
for tool in word2phrase word2vec; do
  [ -x "$W2V/$tool" ] || { echo "no $W2V/$tool: set W2V_SRC to a checkout of tmikolov/word2vec" >&2; exit 1; }
done
SLICE=$WORK/slice20.txt
[ -s "$SLICE" ] || { { zcat -f "$CORPUS" | head -c 20000000 || true; }; echo; } > "$SLICE"
TOKENS=$(wc -w < "$SLICE")
echo "# $(date -u '+%F %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); slice: $TOKENS tokens"

timed() {  # NAME COMMAND...: the command's wall time and peak memory; its output in $WORK/NAME.log
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/$name.log" 2>&1
  read -r wall kb < "$WORK/time.txt"
  awk -v n="$name" -v w="$wall" -v kb="$kb" -v t="$TOKENS" \
    'BEGIN { printf "| %s, whole command | %.2f s | %.0f | %.0f MB |\n", n, w, t / w, kb / 1024 }'
}

inside() {  # NAME: the pass alone, timed inside the process (the JSON line of phrases_peers.py)
  tail -1 "$WORK/$1.log" | $PYTHON -c "import json, sys; r = json.load(sys.stdin); \
    print(f'| $1, the pass alone | {r[\"seconds\"]:.2f} s | {r[\"words_per_s\"]:.0f} | |')"
}

if [[ " $STAGES " == *" equality "* ]]; then
  "$W2V/word2phrase" -train "$SLICE" -output "$WORK/w2p-1.txt" -debug 0 > /dev/null
  $W2V_NCE phrases "$SLICE" --out "$WORK/ours-1.txt"
  echo "## one pass, threshold 100, min-count 5: word2phrase (ref) against ours"
  $PEERS compare "$WORK/w2p-1.txt" "$WORK/ours-1.txt"
  echo "## the same, ours counting pairs within lines (as gensim) instead of across line breaks (as word2phrase)"
  $PEERS within-lines "$SLICE" "$WORK/within-1.txt" > /dev/null
  $PEERS compare "$WORK/w2p-1.txt" "$WORK/within-1.txt" | tail -1
  "$W2V/word2phrase" -train "$SLICE" -output "$WORK/w2p-1b.txt" -debug 0 -threshold 200 > /dev/null
  "$W2V/word2phrase" -train "$WORK/w2p-1b.txt" -output "$WORK/w2p-2.txt" -debug 0 -threshold 100 > /dev/null
  $W2V_NCE phrases "$SLICE" --passes 2 --out "$WORK/ours-2.txt"
  echo "## two passes (200, then 100): word2phrase twice (ref) against ours"
  $PEERS compare "$WORK/w2p-2.txt" "$WORK/ours-2.txt"
fi

if [[ " $STAGES " == *" speed "* ]]; then
  $W2V_NCE phrases "$SLICE" --out "$WORK/warm.txt" > /dev/null 2>&1  # numba's cache, compiled once
  echo "| tool, one pass | seconds | words/s | peak memory |"
  echo "|---|---|---|---|"
  for round in 1 2; do
    timed "ours-$round" $W2V_NCE phrases "$SLICE" --out "$WORK/speed-ours.txt"
    timed "ours-inside-$round" $PEERS ours "$SLICE" "$WORK/speed-ours.txt"
    inside "ours-inside-$round"
    timed "word2phrase-$round" "$W2V/word2phrase" -train "$SLICE" -output "$WORK/speed-w2p.txt" -debug 0
    timed "gensim-$round" $PEERS gensim-phrases "$SLICE" "$WORK/speed-gensim.txt" --threshold 100
    inside "gensim-$round"
  done
fi

if [[ " $STAGES " == *" quality "* ]]; then
  TEXT=$WORK/corpus.txt
  [ -s "$TEXT" ] || zcat -f "$CORPUS" > "$TEXT"
  nce=$(realpath "$(command -v "$W2V_NCE")") corpus=$(realpath "$CORPUS")
  for loss in neg nce; do  # ours: the phrase passes inside train (run in $WORK: its runs/latest, not the checkout's)
    rm -rf "$WORK/ours-sg-$loss"
    (cd "$WORK" && $NICE "$nce" train "$corpus" --phrases 2 --config "sg-$loss" --threads 2 --no-progress \
      --out "$WORK/ours-sg-$loss" 2>&1 | grep -v "^note:")
  done
  t0=$(date +%s)  # word2vec.c: word2phrase twice, then word2vec
  $NICE "$W2V/word2phrase" -train "$TEXT" -output "$WORK/c-1.txt" -threshold 200 -debug 0 > /dev/null
  $NICE "$W2V/word2phrase" -train "$WORK/c-1.txt" -output "$WORK/c-2.txt" -threshold 100 -debug 0 > /dev/null
  t1=$(date +%s)
  $NICE "$W2V/word2vec" -train "$WORK/c-2.txt" -output "$WORK/c-sg-neg.bin" -cbow 0 -size 100 -window 5 \
    -negative 5 -hs 0 -sample 1e-3 -threads 2 -iter 5 -min-count 5 -alpha 0.025 -binary 1 -debug 0
  echo "word2vec.c: phrases $((t1 - t0)) s, training $(($(date +%s) - t1)) s"
  t0=$(date +%s)  # gensim: Phrases twice, then Word2Vec
  $NICE $PEERS gensim-phrases "$TEXT" "$WORK/g-1.txt" --threshold 200
  $NICE $PEERS gensim-phrases "$WORK/g-1.txt" "$WORK/g-2.txt" --threshold 100
  $NICE $PEERS gensim-train "$WORK/g-2.txt" "$WORK/gensim-sg-neg.kv" --threads 2
  echo "gensim: $(($(date +%s) - t0)) s"
  echo "## the whole corpus, two passes: word2phrase twice (ref) against ours"
  $W2V_NCE phrases "$TEXT" --passes 2 --out "$WORK/ours-full-2.txt"
  $PEERS compare "$WORK/c-2.txt" "$WORK/ours-full-2.txt"
  for v in ours-sg-neg ours-sg-nce c-sg-neg.bin gensim-sg-neg.kv; do
    name=${v%.*}
    for r in 30000 300000; do
      $W2V_NCE eval analogies "$WORK/$v" --questions "$QUESTIONS" --restrict-vocab $r --json \
        > "$WORK/$name phrases $r.json"
    done
    $W2V_NCE eval analogies "$WORK/$v" --json > "$WORK/$name words 30000.json"
  done
  echo "| vectors, questions, top words | accuracy | correct / answered | coverage |"
  echo "|---|---|---|---|"
  for v in ours-sg-neg ours-sg-nce c-sg-neg gensim-sg-neg; do
    $PEERS table "$WORK/$v phrases 30000.json" "$WORK/$v phrases 300000.json" "$WORK/$v words 30000.json"
  done
  for f in "$WORK/c-2.txt" "$WORK/g-2.txt"; do
    echo "$f: $(grep -o '_' "$f" | wc -l) joins, $(wc -w < "$f") tokens"
  done
  grep -h "phrases_joined\|^tokens" "$WORK/ours-sg-neg/config.toml"
fi

if [[ " $STAGES " == *" memory "* ]]; then
  TEXT=$WORK/corpus.txt
  [ -s "$TEXT" ] || zcat -f "$CORPUS" > "$TEXT"
  TAIL=$WORK/longtail2.txt
  [ -s "$TAIL" ] || $PYTHON "$(dirname "$0")/longtail.py" "$CORPUS" "$TAIL" --tokens 10000000 --every 2
  echo "| text, passes, --memory | seconds | words/s | peak memory |"
  echo "|---|---|---|---|"
  for case in "longtail2 1 64G" "longtail2 1 512M" "longtail2 1 128M" "corpus 2 64G" "corpus 2 512M" "corpus 2 64M"; do
    read -r text passes memory <<< "$case"
    TOKENS=$(wc -w < "$WORK/$text.txt")
    timed "$text, $passes passes, --memory $memory" $W2V_NCE phrases "$WORK/$text.txt" --passes "$passes" \
      --memory "$memory" --no-progress --out "$WORK/mem-$text-$memory.txt"
    grep -o "the tables outgrew.*" "$WORK/$text, $passes passes, --memory $memory.log" | head -1 || true
  done
  for text in longtail2 corpus; do
    for f in "$WORK/mem-$text"-*.txt; do
      cmp -s "$f" "$WORK/mem-$text-64G.txt" && echo "$f: the same as without a bound" || echo "$f: DIFFERS"
    done
  done
fi
