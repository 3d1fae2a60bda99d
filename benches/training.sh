#!/usr/bin/env bash
# Training throughput, same run: (a) a 1-worker SpindleEstimator.fit against a plain Rust loop running `train` on
# in-memory batches (same model, batch 256, one intra-op and one inter-op thread); (c) rows/s fed during training
# against Spark's scan of the same DataFrame. TrainingBench.scala says what each figure covers.
# Usage: bash benches/training.sh [rows=60000] [epochs=3] [repeats=3] [feedRows=400000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-60000}"; epochs="${2:-3}"; repeats="${3:-3}"; feed_rows="${4:-400000}"
bash ci/setup-tensorflow.sh
export TF_CPP_MIN_LOG_LEVEL=2
rust="$(cargo run -q --release -p spindle-runtime --example train_bench -- tests/fixtures/mnist_mlp \
  "$rows" 256 "$epochs" "$repeats" 1 1 | tee /dev/stderr | sed -n 's/^BENCH rust-train-loop *\([0-9.]*\).*/\1/p')"
jvm="$(SBT_NOFORMAT=true ./sbt "benches/runMain io.spindle.benches.TrainingBench $rows $epochs $repeats $feed_rows" \
  | tee /dev/stderr)"
fit="$(sed -n 's/.*BENCH fit-train *\([0-9.]*\).*/\1/p' <<<"$jvm")"
python3 - "$fit" "$rust" <<'PY'
import sys
f, r = map(float, sys.argv[1:])
print(f"fit (1 worker) {f:,.0f} samples/s | plain Rust train loop {r:,.0f} samples/s")
print(f"fit / rust loop = {f / r:.3f}  (target >= 0.95)")
PY
grep 'BENCH ratio' <<<"$jvm"
