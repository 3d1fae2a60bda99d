#!/usr/bin/env bash
# Inference throughput: SpindleModel.transform vs Spark's own scan vs the Rust runtime alone, same run.
# Usage: bash benches/inference.sh [rows=60000] [batch=256] [repeats=30]
# Each side runs `repeats` untimed passes (JIT warm-up), then reports the best of `repeats` timed ones.
# Both sides use the same layout: two tasks (threads), one shared session, intra-op 1, inter-op 2.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-60000}"; batch="${2:-256}"; repeats="${3:-30}"
bash ci/setup-tensorflow.sh
export TF_CPP_MIN_LOG_LEVEL=2
rust="$(cargo run -q --release -p spindle-runtime --example inference_bench -- "$rows" "$batch" "$repeats" | tee /dev/stderr | sed -n 's/^BENCH rust-runtime *\([0-9.]*\).*/\1/p')"
jvm="$(SBT_NOFORMAT=true ./sbt "benches/runMain io.spindle.benches.InferenceBench $rows $batch $repeats" | tee /dev/stderr)"
transform="$(sed -n 's/.*BENCH transform *\([0-9.]*\).*/\1/p' <<<"$jvm")"
scan="$(sed -n 's/.*BENCH spark-scan *\([0-9.]*\).*/\1/p' <<<"$jvm")"
python3 - "$transform" "$scan" "$rust" <<'PY'
import sys
t, s, r = map(float, sys.argv[1:])
print(f"transform {t:,.0f} rows/s | spark scan {s:,.0f} rows/s | rust runtime alone {r:,.0f} rows/s")
print(f"transform / spark scan   = {t / s:.3f}")
print(f"transform / rust runtime = {t / r:.3f}  (target >= 0.5)")
PY
