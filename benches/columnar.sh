#!/usr/bin/env bash
# Columnar input and native Parquet (issue 35), every figure and ratio of one run side by side, best / median:
#  (a) transform over a Parquet file of rows x 784 float32 (mnist_mlp) vs Spark's scan of it into the noop sink and
#      vs the Rust runtime alone on same-shaped batches;
#  (b) 100 float columns packed into one [batch, 100] input (packedInputCols): the columnar path vs the row path;
#  (c) 200 float columns into one [batch, 200] input: packedInputCols vs VectorAssembler + transform vs PySpark's
#      predict_batch_udf (benches/python/columnar_udf_bench.py);
#  (d) a 1-worker SpindleEstimator.fit over Parquet vs in-process Keras model.fit on the same rows in numpy
#      (benches/python/columnar_keras_fit.py), and the split of fit's time.
# ColumnarBench.scala says what each figure covers. The Parquet files (random floats) are written once by Spark
# under target/columnar/data and kept; the models of (b) and (c) are made under target/columnar/models on first use.
#
# Usage: bash benches/columnar.sh [--rows 200000] [--batch 256] [--warmups 5] [--repeats 5] [--only a,b,c,d]
#          [--fit-rows 600000] [--epochs 3] [--fit-repeats 3] [--threads 1]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows=200000; batch=256; warmups=5; repeats=5; only="a,b,c,d"; fit_rows=600000; epochs=3; fit_repeats=3; threads=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2" ;;
    --batch) batch="$2" ;;
    --warmups) warmups="$2" ;;
    --repeats) repeats="$2" ;;
    --only) only="$2" ;;
    --fit-rows) fit_rows="$2" ;;
    --epochs) epochs="$2" ;;
    --fit-repeats) fit_repeats="$2" ;;
    --threads) threads="$2" ;;
    *) echo "unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
has() { [[ ",$only," == *",$1,"* ]]; }
bash ci/setup-tensorflow.sh
bash ci/setup-python.sh
export TF_CPP_MIN_LOG_LEVEL=2 SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$root/.venv/bin/python"
data="$root/target/columnar/data"; models="$root/target/columnar/models"
mkdir -p "$data"
log="$(mktemp)"; trap 'rm -f "$log"' EXIT
echo "load before: $(uptime)" | tee -a "$log"

for k in 100 200; do
  if { has b || has c; } && [[ ! -f "$models/dense_$k/saved_model.pb" ]]; then
    .venv/bin/python benches/python/make_columnar_models.py "$models" "$k"
  fi
done
if has a; then
  cargo run -q --release -p spindle-runtime --example inference_bench -- "$rows" "$batch" "$repeats" | tee -a "$log"
fi
SBT_NOFORMAT=true ./sbt "benches/runMain io.spindle.benches.ColumnarBench $data $models $rows $batch $warmups \
  $repeats $only $fit_rows $epochs $fit_repeats $threads" | tee -a "$log"
if has c; then
  # One untimed pass there: it loads the model in each Python worker, and Python has no JIT to warm up.
  .venv/bin/python benches/python/columnar_udf_bench.py "$data/flat200-$rows.parquet" "$models/dense_200" "$batch" \
    1 "$repeats" | tee -a "$log"
fi
if has d; then
  .venv/bin/python benches/python/columnar_keras_fit.py "$data/fit-$fit_rows.parquet" "$epochs" "$batch" \
    "$fit_repeats" "$threads" | tee -a "$log"
fi
echo "load after: $(uptime)" | tee -a "$log"

echo
echo "=== columnar.sh --rows $rows --batch $batch --warmups $warmups --repeats $repeats --only $only" \
  "--fit-rows $fit_rows --epochs $epochs --fit-repeats $fit_repeats --threads $threads ($(date -u +%F))"
python3 - "$log" "$rows" "$fit_rows" "$epochs" "$only" <<'PY'
import re
import sys

log, rows, fit_rows, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
only = set(sys.argv[5].split(","))
text = open(log).read()
line = r"^(?:\[info\] )?BENCH (\S+)\s+best\s+(\S+)\s+median\s+(\S+)"
fig = {m[1]: (float(m[2]), float(m[3])) for m in re.finditer(line, text, re.M)}
m = re.search(r"^BENCH rust-runtime\s+(\S+) rows/s \(best of \d+: (\S+) s, median (\S+) s\)", text, re.M)
if m:
    fig["rust-runtime"] = (float(m[1]), rows / float(m[3]))


def show(label, key, unit="rows/s"):
    if key in fig:
        b, med = fig[key]
        print(f"  {label:<44} {b:>12,.0f} / {med:>12,.0f} {unit}")
    else:
        print(f"  {label:<44} {'n/a':>12} (not run)")


def ratio(label, num, den, target):
    if num in fig and den in fig:
        (nb, nm), (db, dm) = fig[num], fig[den]
        print(f"  {label:<44} {nb / db:>12.3f} / {nm / dm:>12.3f}   (target {target})")
    else:
        print(f"  {label:<44} {'n/a':>12}   (target {target})")


print("figures: best / median")
if "a" in only:
    print(f"(a) Parquet inference: {rows:,} rows x 784 float32, mnist_mlp")
    show("Spark scan of the file -> noop", "a.spark-scan-noop")
    show("transform, probabilities -> noop", "a.transform-select")
    show("transform, every column -> noop", "a.transform-all")
    show("Rust runtime alone, same batches", "rust-runtime")
    ratio("transform (probabilities) / Spark scan", "a.transform-select", "a.spark-scan-noop", ">= 2")
    ratio("transform (probabilities) / runtime alone", "a.transform-select", "rust-runtime", ">= 0.5")
    ratio("transform (every column) / Spark scan", "a.transform-all", "a.spark-scan-noop", "none, reference")
if "b" in only:
    print(f"(b) 100 float columns -> float32 [None, 100], {rows:,} rows")
    show("packedInputCols, columnar path", "b.packed-columnar")
    show("packedInputCols, row path (columnar off)", "b.packed-row")
    show("row path, every column handed on (as before)", "b.packed-row-all")
    show("array(f0..f99) -> input (no packedInputCols)", "b.array-row")
    show("Spark scan of the file -> noop", "b.spark-scan-noop")
    ratio("columnar / row", "b.packed-columnar", "b.packed-row", ">= 4")
    ratio("columnar / row as before (every column)", "b.packed-columnar", "b.packed-row-all", "reference")
    ratio("columnar / Spark scan (reference)", "b.packed-columnar", "b.spark-scan-noop", "none, reference")
    ratio("columnar / array(...) (reference)", "b.packed-columnar", "b.array-row", "none, reference")
if "c" in only:
    print(f"(c) 200 float columns -> float32 [None, 200], {rows:,} rows")
    show("Spindle packedInputCols", "c.packed")
    show("VectorAssembler + Spindle transform", "c.vector-assembler")
    show("array(f0..f199) + Spindle transform", "c.array")
    show("PySpark predict_batch_udf, Python TF", "c.predict-batch-udf")
    ratio("Spindle / VectorAssembler", "c.packed", "c.vector-assembler", ">= 3")
    ratio("Spindle / predict_batch_udf", "c.packed", "c.predict-batch-udf", ">= 3")
    ratio("VectorAssembler / predict_batch_udf (reference)", "c.vector-assembler", "c.predict-batch-udf", "none")
if "d" in only:
    print(f"(d) fit vs in-process Keras: {fit_rows:,} rows x 784, {epochs} epochs, 1 worker")
    show("SpindleEstimator.fit over Parquet (wall)", "d.fit", "samples/s")
    show("Keras model.fit, numpy in memory (warm)", "d.keras", "samples/s")
    show("Keras model.fit, its first call", "d.keras-first", "samples/s")
    ratio("fit / Keras (warm)", "d.fit", "d.keras", ">= 1.0")
    ratio("fit / Keras (first call)", "d.fit", "d.keras-first", "none, reference")
    s = re.search(r"^(?:\[info\] )?BENCH d\.split (.*) s$", text, re.M)
    if s:
        v = dict(zip(*[iter(s[1].split())] * 2))
        wall = float(v["wall"])
        print(f"  split of fit's best run (s): wall {wall:.3f} = " + " + ".join(
            f"{k} {float(v[k]):.3f} ({float(v[k]) / wall:.0%})" for k in ("inputWait", "compute", "allReduce", "fixed")
        ) + f"; the steps sum to {float(v['stepSum']):.3f}")
for line in re.findall(r"^load .*$", text, re.M):
    print(line)
PY
