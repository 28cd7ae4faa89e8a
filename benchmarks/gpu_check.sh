#!/usr/bin/env bash
# The GPU checks of docs/benchmarks-log.md section 6 in one command, for a lent GPU machine (`make gpu-check OUT=$OUT`,
# with .device carried: `make gpu-kit` fills it). Every stage has its own time limit and a failure does not stop
# the next, so one call returns everything it could measure. Logs and reports land in $OUT (at most 8 files):
#   gpu-check.log   everything printed, stage by stage, with the seconds since the start
#   profile.json    benchmarks/gpu_profile.py: gen / kernel / Python time, the warps and launch sweep, torch step
#   bench-sg.md, bench-cbow.md   w2v-nce bench --device cuda, 5 epochs, neg and nce, with the scores
#   ncu.txt         Nsight Compute on one training launch of the fused sg-neg kernel
#   tests.log       pytest -m cuda, whole
#   bench-share.md  sg-neg and sg-nce with --shared-noise 8 (the CPU's default for sg), 5 epochs
#   (the subwords stage prints its words/s into gpu-check.log: sg-neg words only, --subwords, --jamo, 1 epoch)
# STAGES (default: all) picks some: env selfcheck kerneltests profile bench share subwords trainingtests ncu. DEADLINE (seconds,
# default 420) bounds the whole: each stage gets at most what is left of it, so the device call's timeout can be
# DEADLINE plus a margin and still return every log.
set -u
OUT=${OUT:-.}
KIT=${KIT:-.device}
PY=${PYTHON:-python3}
STAGES=${STAGES:-"env selfcheck kerneltests profile bench share subwords trainingtests ncu"}
DEADLINE=${DEADLINE:-420}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
t0=$SECONDS
stage() { echo; echo "=== [$((SECONDS - t0)) s] $*"; }
want() { [[ " $STAGES " == *" $1 "* ]]; }
# lim N: N seconds, or what is left before the deadline if less; stages with under 10 s left are skipped
lim() { local left=$((DEADLINE - (SECONDS - t0))); echo $((left < $1 ? left : $1)); }
fits() { [ "$(lim "$1")" -ge 10 ] || { echo "(skipped: the deadline)"; return 1; }; }
run_tests() {  # pytest -m cuda on the tests that match $2, within $1 seconds
  timeout "$(lim "$1")" $PY -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider --durations=6 -k "$2" \
    >> "$OUT/tests.log" 2>&1
  echo "pytest exit $?"; grep -E "passed|failed|error|^FAILED|^ERROR|s call" "$OUT/tests.log" | tail -25
}

stage "install the carried wheels"
$PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$KIT"/*.whl || echo "wheels: FAILED"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1

if want env; then
  stage env
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  $PY -c "import sys, torch, numba; print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda, '| numba', numba.__version__)"
  $PY -m pip list 2>/dev/null | grep -iE "^(numba|numba-cuda|llvmlite|cuda-bindings|cuda-python|nvidia-cuda-nvcc|nvidia-nvjitlink|gensim|numpy|scipy|typer|pytest) "
  nproc
fi

if want selfcheck && fits 90; then
  stage "the fused CUDA kernels: compile (warm_up), then the start-up self-check against the CPU kernel"
  timeout "$(lim 90)" $PY - <<'EOF'
import time, traceback
t = time.perf_counter()
import torch
from numba import cuda
print("numba sees a GPU:", cuda.is_available(), cuda.detect() if cuda.is_available() else "")
from w2v_nce.step import cuda as cuda_step
try:
    t = time.perf_counter(); cuda_step.warm_up(torch.device("cuda")); print(f"warm_up (compile): {time.perf_counter() - t:.1f} s")
    t = time.perf_counter(); r = cuda_step.self_check(); print(f"self_check: {r or 'PASSED'} ({time.perf_counter() - t:.1f} s)")
except Exception:
    traceback.print_exc()
EOF
fi

if want kerneltests && fits 60; then
  stage "pytest -m cuda: the kernels against the CPU kernel, the gradients, the self-check, the checkpoint"
  run_tests 60 "not learns_the_same_signal"
fi

if want profile && fits 100; then
  stage "where the time goes (benchmarks/gpu_profile.py)"
  timeout "$(lim 100)" $PY benchmarks/gpu_profile.py "$KIT/corpus.txt.gz" --budget 10 --out "$OUT/profile.json" \
    2> >(grep -v "NumbaPerformanceWarning\|warnings.warn" >&2)
fi

bench() {  # w2v-nce bench --device cuda --model $1, neg and nce, with the scores; $3: more flags, $4: the report's name
  # 5 epochs where the profile's speed says they fit in 25 s of training, else fewer (the report says which)
  local epochs
  epochs=$($PY -c "import json
try:
    rows = json.load(open('$OUT/profile.json'))['rows']; wps = [r['words_per_s'] for r in rows if r['model'] == '$1'][0]
    print(max(1, min(5, int(25 * wps / 16.9e6))))
except Exception:
    print(5)")
  fits 60 || return
  stage "w2v-nce bench --device cuda --model $1, $epochs epochs"
  timeout "$(lim $2)" $PY -m w2v_nce.cli bench "$KIT/corpus.txt.gz" --ours-only --device cuda --model "$1" --loss neg \
    --loss nce --epochs "$epochs" ${3:-} --json --out "$OUT/bench-${4:-$1}.md" 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$\|Mw/s\|NumbaPerformance\|warnings.warn" | tail -30
}

if want bench; then bench sg 110; fi

if want bench; then bench cbow 90; fi

if want share; then bench sg 90 "--shared-noise 8" share; fi

if want subwords && fits 40; then
  stage "subword rows on the GPU (issue 39): sg-neg, 1 epoch, words only against --subwords; Korean with --jamo"
  zcat "$KIT/corpus.txt.gz" | head -c 20000000 > /tmp/slice20.txt
  [ -f "$KIT/ko.txt.gz" ] && zcat "$KIT/ko.txt.gz" > /tmp/ko.txt
  for job in "/tmp/slice20.txt|" "/tmp/slice20.txt|--subwords 3-6" "/tmp/ko.txt|" "/tmp/ko.txt|--subwords 1-4" \
             "/tmp/ko.txt|--subwords 1-4 --jamo"; do
    text=${job%%|*}; flags=${job#*|}
    [ -f "$text" ] && fits 15 || continue
    echo "-- $text $flags"
    timeout "$(lim 60)" $PY -m w2v_nce.cli train "$text" --epochs 1 --device cuda --no-progress $flags \
      --out "/tmp/sub-run-$RANDOM$RANDOM" 2>&1 | grep -E "trained|note|error" | grep -v "little text"
  done
fi

if want trainingtests && fits 40; then
  stage "pytest -m cuda: every head x model x step trains on the Lee corpus"
  run_tests 120 "learns_the_same_signal"
fi

if want ncu && fits 40; then
  stage "Nsight Compute on one training launch (sg-neg, a 20 MB slice)"
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  zcat "$KIT/corpus.txt.gz" | head -c 20000000 > /tmp/slice20.txt
  # 6 launches of the logistic kernel come before training (warm_up 2, self_check 4): skip those and one more
  timeout "$(lim 75)" "$NCU" --clock-control none -k regex:logistic_kernel --launch-skip 7 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section MemoryWorkloadAnalysis --section SchedulerStats \
    $PY -m w2v_nce.cli train /tmp/slice20.txt --epochs 1 --device cuda --no-progress --out /tmp/ncu-run \
    > "$OUT/ncu.txt" 2>&1
  echo "ncu exit $?"; grep -E "Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Grid Size|Warp Cycles Per Issued|Block Limit" "$OUT/ncu.txt" | head -30
fi
stage done
sleep 1  # tee has written the last lines before the call collects $OUT
