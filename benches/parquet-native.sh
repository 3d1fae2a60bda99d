#!/usr/bin/env bash
# Issue 35, part 3: is decoding Parquet natively (Rust, arrow-rs's parquet crate) at least 2x Spark's own scan?
# Spark (pyspark, local[2]) writes ROWS rows with one array<float> column of 784 values as 2 snappy Parquet files
# (once, kept under target/parquet-native/data-ROWS; PARQUET_NATIVE_DATA to put them elsewhere), then times its scan
# into the noop sink, and a scan taking array_max of every row for reference (benches/python/parquet_scan.py). The
# standalone Rust program benches/parquet-native (its own workspace, built into target/parquet-native: the root
# workspace never compiles arrow) reads the same files in batches of 256 rows into one reused f32 [256, 784]
# buffer, with the arrow reader and with the lower-level column reader, on 1 thread and on 2 (each half the row
# groups). Spark and native alternate in REPEATS + 1 rounds, the first untimed, so that other work on the machine
# weighs on both; prints best and median rows/s of each and native / spark-noop (target >= 2.0).
# Usage: bash benches/parquet-native.sh [rows=200000] [repeats=5]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows=${1:-200000}
repeats=${2:-5}
width=784
batch=256
die() { echo "parquet-native.sh: $*" >&2; exit 1; }
export CARGO_TARGET_DIR=$root/target/parquet-native
cargo build -q --release --manifest-path benches/parquet-native/Cargo.toml || die "could not build benches/parquet-native"
data=${PARQUET_NATIVE_DATA:-$CARGO_TARGET_DIR/data-$rows}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[parquet-native] $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $rows rows x $width float; batch $batch; $repeats repeats; data $data"

export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1
(cd /tmp && "$root/.venv/bin/python" "$root/benches/python/parquet_scan.py" "$data" "$rows" "$repeats" "$width" \
  "$CARGO_TARGET_DIR/release/parquet-native") 2> "$work/spark.err" | tee "$work/out" | grep -v '^TIMES' \
  || { tail -30 "$work/spark.err" >&2; die "the benchmark failed"; }
echo "[parquet-native] load after $(cut -d' ' -f1-3 /proc/loadavg)"

# TIMES <side> k=v ... rows=N ... ms t1 t2 ...
grep '^TIMES' "$work/out" | awk '
  function sort(a, n,  i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
  {
    name = $2; rows = 0
    for (i = 3; i <= NF && $i != "ms"; i++) { if ($i ~ /^rows=/) rows = substr($i, 6); else if ($i !~ /^groups=/) name = name " " $i }
    n = 0; delete a
    for (i++; i <= NF; i++) a[++n] = $i / 1000
    sort(a, n)
    med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    best[name] = rows / a[1]; median[name] = rows / med; order[++k] = name
    printf "BENCH %-34s best %10.0f rows/s  median %10.0f rows/s  (%d runs; best %.3f s, median %.3f s)\n", name, best[name], median[name], n, a[1], med
  }
  END {
    s = "spark case=noop"
    for (o = 1; o <= k; o++) if (order[o] ~ /^native/) {
      printf "RATIO %-34s / spark noop: best %.2f  median %.2f  (target >= 2.0)\n", order[o], best[order[o]] / best[s], median[order[o]] / median[s]
    }
    split("arrow column", r, " ")
    for (i = 1; i <= 2; i++) {
      one = "native reader=" r[i] " threads=1"; two = "native reader=" r[i] " threads=2"
      if ((one in best) && (two in best)) printf "RATIO native %s 2 threads / 1 thread: best %.2f  median %.2f\n", r[i], best[two] / best[one], median[two] / median[one]
    }
  }'
