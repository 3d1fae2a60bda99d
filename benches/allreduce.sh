#!/usr/bin/env bash
# Ring all-reduce over loopback TCP against the ideal 2 (N - 1) / N x S / B, with B the point-to-point loopback
# throughput measured in the same run. Each rank is a thread of one process.
# Usage: bash benches/allreduce.sh [repeats=5] [sizes in MB=1,10,100] [ranks=2,4]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup-tensorflow.sh
cargo run -q --release -p spindle-runtime --example allreduce_bench -- "$@"
