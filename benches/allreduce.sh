#!/usr/bin/env bash
# Ring all-reduce over loopback TCP against (a) the ideal 2 (N - 1) / N x S / B, with B the point-to-point loopback
# throughput measured in the same run, each rank a thread of one process, and (b) the peer collective: Gloo's
# all_reduce (PyTorch's CPU backend, Horovod's on CPUs), each rank a process, same sizes and rank counts, same run.
# Prints Spindle / Gloo per case (target <= 1.0).
# torch comes from PyPI into a bench-only venv, target/bench-torch (its Linux wheel brings CUDA's nvidia-* wheels,
# some GB, never used here): CI does not run this.
# Usage: bash benches/allreduce.sh [repeats=5] [sizes in MB=1,10,100] [ranks=2,4]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
torch_version=2.9.1
venv=target/bench-torch
if ! "$venv/bin/python" -c "import torch; assert torch.__version__.startswith('$torch_version')" 2> /dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "torch==$torch_version" numpy
fi
bash ci/setup-tensorflow.sh > /dev/null
spindle="$(cargo run -q --release -p spindle-runtime --example allreduce_bench -- "$@" | tee /dev/stderr)"
gloo="$("$venv/bin/python" benches/python/gloo_allreduce.py "$@" | tee /dev/stderr)"
echo "Spindle ring / Gloo (target <= 1.0):"
awk '
  $1 == "GLOO" { gloo[$3 " " $5] = $7 }
  $1 == "BENCH" && $2 == "allreduce" { spindle[$3 " " $5] = $7; order[++n] = $3 " " $5 }
  END {
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, c, " ")
      printf "BENCH vs-gloo %4d MB  %d ranks  spindle %9.2f ms  gloo %9.2f ms  ratio %.2f\n", c[1], c[2], spindle[k], gloo[k], spindle[k] / gloo[k]
    }
  }' <(echo "$spindle") <(echo "$gloo")
