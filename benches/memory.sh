#!/usr/bin/env bash
# Peak resident memory (VmHWM, with its anon/file split) of a local[2] JVM while Spindle trains 2 epochs on and then
# scores rows x 784 float32, at 1x and 10x the rows, each in a fresh JVM with a fixed, pre-touched 2 GiB heap.
# MemoryBench.scala says what the figures cover. Target: 10x the data -> < 10% more peak RSS.
# Usage: bash benches/memory.sh [rows=60000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-60000}"
bash ci/setup-tensorflow.sh
export TF_CPP_MIN_LOG_LEVEL=2 SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1
out="$(SBT_NOFORMAT=true ./sbt \
  'set benches / run / javaOptions ++= Seq("-Xms2g", "-Xmx2g", "-XX:+AlwaysPreTouch")' \
  "benches/runMain io.spindle.benches.MemoryBench $rows" \
  "benches/runMain io.spindle.benches.MemoryBench $((rows * 10))" < /dev/null | tee /dev/stderr)"
python3 - "$out" <<'PY'
import re, sys
peaks = [(int(r), float(w), float(p)) for r, w, p in
         re.findall(r"BENCH rss rows=(\d+) warm-up peak (\d+) MiB, peak (\d+) MiB", sys.argv[1])]
(r1, w1, p1), (r10, w10, p10) = peaks
print(f"peak RSS: {r1:,} rows {p1:,.0f} MiB, {r10:,} rows {p10:,.0f} MiB")
print(f"10x data / 1x data peak RSS = {p10 / p1:.3f}  (target < 1.10)")
print(f"growth over the warm-up peak: {p1 - w1:,.0f} MiB at 1x, {p10 - w10:,.0f} MiB at 10x")
PY
