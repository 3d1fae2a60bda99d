#!/usr/bin/env bash
# Image inference: SpindleModel.transform of images from Spark's image data source through a uint8 CNN
# on 32 x 32 RGB images (tests/fixtures/image_cnn) vs the Rust runtime alone on the same decoded bytes, same run.
# Usage: bash benches/images.sh [rows=20000] [batch=256] [repeats=10]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-20000}"; batch="${2:-256}"; repeats="${3:-10}"
bash ci/setup-tensorflow.sh
export TF_CPP_MIN_LOG_LEVEL=2
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
jvm="$(SBT_NOFORMAT=true ./sbt "benches/runMain io.spindle.benches.ImageBench $dir $rows $batch $repeats" | tee /dev/stderr)"
rust="$(cargo run -q --release -p spindle-runtime --example inference_bench -- "$rows" "$batch" "$repeats" \
  model=tests/fixtures/image_cnn input=features dtype=uint8 shape=32,32,3 data="$dir/images.u8" \
  | tee /dev/stderr | sed -n 's/^BENCH rust-runtime *\([0-9.]*\).*/\1/p')"
transform="$(sed -n 's/.*BENCH transform *\([0-9.]*\).*/\1/p' <<<"$jvm")"
python3 - "$transform" "$rust" <<'PY'
import sys
t, r = map(float, sys.argv[1:])
print(f"transform {t:,.0f} rows/s | rust runtime alone {r:,.0f} rows/s")
print(f"transform / rust runtime = {t / r:.3f}  (target >= 0.5)")
PY
