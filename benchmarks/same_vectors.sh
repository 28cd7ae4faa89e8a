#!/bin/bash
# Does a change keep every output? Trains the same runs with this checkout and with revision BASE (a worktree of it in
# a temporary folder), one thread each (reproducible to the bit), and compares the vectors and an export byte for
# byte: every head and model on the CPU kernel, the PyTorch step, phrases, --init.
#   benchmarks/same_vectors.sh BASE        (about 2 minutes on 2 cores; gensim's Lee corpus)
# A base before 05bc3d7 (each epoch's pieces shuffled) or, on an AVX-512 machine, before b741414 (512-bit vectors)
# trains the CPU runs otherwise by design: compare against one at or after both.
# A base before 7235a98 compiles each kernel in the process at its first run, and a kernel compiled in the process
# can differ in the last bits from one loaded from numba's cache (docs/benchmarks-log.md section 23); at this
# script's dim 32 a base of c2ba51c gave 15 of 15 identical.
set -euo pipefail
BASE=${1:?usage: benchmarks/same_vectors.sh BASE-REVISION}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'git -C "$HERE" worktree remove --force "$WORK/base" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
git -C "$HERE" worktree add --detach "$WORK/base" "$BASE" >/dev/null
LEE=$($PYTHON -c 'from gensim.test.utils import datapath; print(datapath("lee_background.cor"))')

runs() {  # SRC OUT: the runs, trained by the package in SRC
  local src=$1 out=$2
  mkdir -p "$out"
  t() {
    local name=$1; shift
    (cd "$src" && PYTHONPATH="$src" $PYTHON -m w2v_nce train "$LEE" --threads 1 --no-progress --epochs 2 --dim 32 \
      --out "$out/$name" "$@" > "$out/$name.log" 2>&1) || echo "failed: $name ($src; $out/$name.log)"
  }
  t sg-neg --loss neg;            t cbow-neg --model cbow --loss neg
  t sg-nce --loss nce;            t cbow-nce --model cbow --loss nce
  t sg-hs --loss hs;              t cbow-hs --model cbow --loss hs
  t sg-infonce --loss infonce;    t sg-ss --loss sampled-softmax
  t cbow-ss --model cbow --loss sampled-softmax
  t sg-softmax --loss softmax
  t torch-neg --kernel torch --loss neg
  t torch-nce --kernel torch --model cbow --loss nce
  t phrases --phrases 1 --lowercase
  t init --init "$out/sg-neg" --epochs 1
  (cd "$src" && PYTHONPATH="$src" $PYTHON -m w2v_nce export "$out/sg-neg" --format word2vec --out "$out/sg-neg.txt" \
    > /dev/null 2>&1) || echo "failed: export ($src)"
}

runs "$WORK/base" "$WORK/a"
runs "$HERE" "$WORK/b"
$PYTHON - "$WORK/a" "$WORK/b" <<'PY'
import sys
from pathlib import Path

from gensim.models import KeyedVectors
import numpy as np

a, b = map(Path, sys.argv[1:])
same = True
for run in sorted(p for p in a.iterdir() if p.is_dir()):
    x, y = KeyedVectors.load(str(run / "vectors.kv")), KeyedVectors.load(str(b / run.name / "vectors.kv"))
    equal = x.index_to_key == y.index_to_key and np.array_equal(x.vectors, y.vectors)
    same &= equal
    print(f"{run.name:12} {'identical' if equal else 'DIFFERENT'}")
equal = (a / "sg-neg.txt").read_bytes() == (b / "sg-neg.txt").read_bytes()
same &= equal
print(f"{'export':12} {'identical' if equal else 'DIFFERENT'}")
sys.exit(0 if same else 1)
PY
