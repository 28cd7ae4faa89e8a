#!/usr/bin/env bash
# What training on several processes costs in quality and gives in speed (docs/benchmarks-log.md section 7): for sg-neg
# and cbow-neg, one process with 2 threads, then torchrun with 2 and with 4 processes of 1 thread each, every run
# scored by `w2v-nce eval` (analogies, WordSim353, SimLex-999); one Markdown table row per run.
#
#   CORPUS=corpus.txt.gz EPOCHS=5 SYNC_WORDS=1000000 SYNC_GAIN=auto [SYNC=full] [PROCS="1 2 4"] [OUT=dir] \
#     benchmarks/distributed_quality.sh            (or: make bench-distributed CORPUS=... EPOCHS=...)
#
# PYTHON (default python3) must have w2v-nce and torch; the runs are left in OUT (default /tmp/w2v-nce-distributed)
# with each run's log beside its directory. The 1-process row ignores the --sync-* flags.
set -euo pipefail
: "${CORPUS:?set CORPUS to a text file}"
EPOCHS=${EPOCHS:-5}
SYNC_WORDS=${SYNC_WORDS:-1000000}
SYNC_GAIN=${SYNC_GAIN:-auto}
SYNC=${SYNC:-full}
PROCS=${PROCS:-1 2 4}
OUT=${OUT:-/tmp/w2v-nce-distributed}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"

echo "corpus $CORPUS, $EPOCHS epochs, --sync $SYNC --sync-words $SYNC_WORDS --sync-gain $SYNC_GAIN"
echo
echo "| model | processes x threads | words/s | training s | synchronisations | s in collectives | MiB sent by rank 0 | analogies | WS353 | SimLex-999 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for preset in sg-neg cbow-neg; do
  for procs in $PROCS; do
    run="$OUT/$preset-$procs"
    rm -rf "$run"
    flags=(train "$CORPUS" --config "$preset" --epochs "$EPOCHS" --no-progress --out "$run"
           --sync "$SYNC" --sync-words "$SYNC_WORDS" --sync-gain "$SYNC_GAIN")
    if [ "$procs" = 1 ]; then
      "$PYTHON" -m w2v_nce "${flags[@]}" --threads 2 2> "$run.log" || { cat "$run.log" >&2; exit 1; }
    else
      "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$procs" -m w2v_nce "${flags[@]}" \
        --threads 1 2> "$run.log" || { cat "$run.log" >&2; exit 1; }
    fi
    "$PYTHON" - "$run" "$run.log" "$preset" "$procs" <<'PY'
import json, re, subprocess, sys

run, log, preset, procs = sys.argv[1:]
line = next(l for l in open(log) if l.startswith("trained "))  # the summary line of train (rank 0's)
speed = re.search(r"\(([\d,]+) words/s\)", line).group(1)
seconds = re.search(r"training ([\d.]+) s", line).group(1)
sync = re.search(r"(\d+) synchronisations(?: and \d+ of the hot rows)?: ([\d.]+) s in collectives, ([\d,]+) MiB", line)
syncs, sync_s, mib = sync.groups() if sync else ("-", "-", "-")


def ev(*args):
    out = subprocess.run([sys.executable, "-m", "w2v_nce", "eval", *args, run, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


analogy = ev("analogies")["accuracy"]
ws, simlex = (ev("similarity", "--pairs", p)["spearman"] for p in ("ws353", "simlex999"))
threads = 2 if procs == "1" else 1
print(f"| {preset} | {procs} x {threads} | {speed} | {seconds} | {syncs} | {sync_s} | {mib} | {analogy:.3f} | "
      f"{ws:.3f} | {simlex:.3f} |")
PY
  done
done
