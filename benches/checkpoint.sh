#!/usr/bin/env bash
# Training samples/s with a checkpoint every N steps against none, same run (CheckpointBench.scala says what each
# figure covers).
# Usage: bash benches/checkpoint.sh [rows=60000] [epochs=3] [repeats=3] [every=100]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup-tensorflow.sh
export TF_CPP_MIN_LOG_LEVEL=2
SBT_NOFORMAT=true ./sbt "benches/runMain io.spindle.benches.CheckpointBench ${1:-60000} ${2:-3} ${3:-3} ${4:-100}" \
  | grep -E 'BENCH|samples/s'
