#!/usr/bin/env bash
# String-input inference: SpindleModel.transform of short texts through a TextVectorization + Embedding + Dense model
# (tests/fixtures/corpus/text_classifier) vs Python TensorFlow's signature call on the same batches, same run.
# Usage: bash benches/strings.sh [rows=200000] [batch=256] [repeats=10]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-200000}"; batch="${2:-256}"; repeats="${3:-10}"
bash ci/setup-tensorflow.sh
bash ci/setup-python.sh
export TF_CPP_MIN_LOG_LEVEL=2
python="$(.venv/bin/python benches/python/strings_bench.py "$rows" "$batch" "$repeats" | tee /dev/stderr)"
jvm="$(SBT_NOFORMAT=true ./sbt "benches/runMain io.spindle.benches.StringBench $rows $batch $repeats" | tee /dev/stderr)"
transform="$(sed -n 's/.*BENCH transform *\([0-9.]*\).*/\1/p' <<<"$jvm")"
py="$(sed -n 's/.*BENCH python-tf  *\([0-9.]*\).*/\1/p' <<<"$python")"
tensors="$(sed -n 's/.*BENCH python-tf-tensors *\([0-9.]*\).*/\1/p' <<<"$python")"
python3 - "$transform" "$py" "$tensors" <<'PY'
import sys
t, p, pt = map(float, sys.argv[1:])
print(f"transform {t:,.0f} rows/s | python tensorflow signature {p:,.0f} rows/s ({pt:,.0f} on prebuilt tensors)")
print(f"transform / python tensorflow                  = {t / p:.3f}  (target >= 1.5)")
print(f"transform / python tensorflow, prebuilt tensors = {t / pt:.3f}")
PY
