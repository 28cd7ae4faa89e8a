#!/usr/bin/env bash
# docs/benchmarks-log.md section 4: the CPU step's levers against the exact step (`make bench-levers`), whole corpus, 5 epochs,
# 2 threads, ours only. VARIANTS: the train flags of each variant, separated by '|' (default: the exact step,
# --shared-noise 8, --block 4); MODELS; LOSSES (default neg nce); SEEDS (default 1 2). Prints one row per (model,
# loss, variant): words/s (best and worst run) and the scores' means over the seeds; the JSON rows go to $OUT
# (default bench-levers.jsonl). About 15 minutes a variant.
set -euo pipefail
CORPUS=${CORPUS:-../shared/corpora/wiki100m.txt.gz}
VARIANTS=${VARIANTS:-"--block 1 --shared-noise 1|--shared-noise 8|--block 4"}
MODELS=${MODELS:-"sg cbow"}
LOSSES=${LOSSES:-"neg nce"}
SEEDS=${SEEDS:-"1 2"}
OUT=${OUT:-bench-levers.jsonl}
PY=${PYTHON:-python3}
: > "$OUT"
IFS='|' read -r -a variants <<< "$VARIANTS"
for seed in $SEEDS; do
  for v in "${variants[@]}"; do
    for m in $MODELS; do
      echo "seed $seed, $m, $v" >&2
      # shellcheck disable=SC2086
      w2v-nce bench "$CORPUS" --ours-only --model "$m" $(printf -- '--loss %s ' $LOSSES) --epochs 5 --threads 2 $v \
        --seed "$seed" --json 2>/dev/null | tail -1 | $PY -c "import json, sys
rows = json.load(sys.stdin)
for r in rows:
    r['variant'] = sys.argv[1]
print(json.dumps(rows))" "$v" >> "$OUT"
    done
  done
done
$PY - "$OUT" <<'PYEOF'
import json, sys
from collections import defaultdict
groups = defaultdict(list)
for line in open(sys.argv[1]):
    for r in json.loads(line):
        groups[(r["model"], r["loss"], r["variant"])].append(r)
print("| model | loss | variant | words/s (best, worst) | analogy | WS353 | SimLex | mean log Z | runs |")
print("|---|---|---|---|---|---|---|---|---|")
for (model, loss, variant), rs in sorted(groups.items()):
    mean = lambda k: sum(r[k] for r in rs) / len(rs)
    speeds = [r["train_words_per_s"] for r in rs]
    print(f"| {model} | {loss} | {variant} | {max(speeds):,.0f} ({min(speeds):,.0f}) | {mean('analogy'):.3f} | "
          f"{mean('ws353'):.3f} | {mean('simlex'):.3f} | {mean('mean_log_z'):+.2f} | {len(rs)} |")
PYEOF
