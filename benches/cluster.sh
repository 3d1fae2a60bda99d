#!/usr/bin/env bash
# Fixed cost of training on a real cluster. Starts a standalone master and one worker (2 cores, so 2 executors x 1
# core) from the pyspark distribution on loopback and writes rows x 784 float32 to Parquet in a first application.
# Then, each in an application of its own (fresh executor JVMs, both up before the clock starts), twice (on the fresh
# executors, then again on the same, now warm, ones):
#   - Spark's floor: the same barrier stage over the same rows, every row read, no Spindle;
#   - SpindleEstimator.fit of the MLP 784-128-10 (mnist_mlp), 1 epoch, batch 128 per worker, 2 workers, as a new
#     user starts it;
#   - the same fit with SpindlePlugin warming the model up when the driver and the executors start.
# Prints, from that one run: each fit's wall time, the sum of its step times, call -> first step done, what is left
# above Spark's floor and the steps, and plain in-process Keras model.fit on the same shape of data and two cores.
# Targets (issue 13): fit wall <= step sum + 2 s; first step <= 2 s after fit is called; fit samples/s >= Keras's.
# Usage: bash benches/cluster.sh [rows=60000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-60000}"
bash ci/setup-tensorflow.sh >&2
bash ci/setup-spark.sh >&2
bash ci/setup-python.sh >&2
jars="$(SBT_NOFORMAT=true ./sbt "print core/assembly" "print libtensorflow/tensorflowJar" < /dev/null |
  grep -E '^/.*\.jar$' | paste -sd, -)"
home="$(cat "target/spark-dist/$(sed -n 's/.*spark4 *= *"\([0-9.]*\)".*/\1/p' build.sbt | head -1)/home")"
work="$(mktemp -d /tmp/spindle-cluster-XXXXXX)"
mkdir -p "$work/conf"
# Millisecond timestamps in every log of the run (driver, executors), for a look at where the time went.
cp benches/cluster/log4j2.properties "$work/conf/"
export SPARK_HOME="$home" JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1 SPARK_MASTER_HOST=127.0.0.1 TF_CPP_MIN_LOG_LEVEL=2
export SPARK_LOG_DIR="$work/logs" SPARK_PID_DIR="$work/pids" SPARK_WORKER_DIR="$work/worker" SPARK_CONF_DIR="$work/conf"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
master="spark://127.0.0.1:$port"
daemon() { "$home/sbin/spark-daemon.sh" "$@" >&2; }
stop() { daemon stop org.apache.spark.deploy.worker.Worker 1 || true; daemon stop org.apache.spark.deploy.master.Master 1 || true; }
trap stop EXIT
daemon start org.apache.spark.deploy.master.Master 1 --host 127.0.0.1 --port "$port" --webui-port 0
for _ in $(seq 300); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
daemon start org.apache.spark.deploy.worker.Worker 1 --host 127.0.0.1 --webui-port 0 --cores 2 --memory 6g "$master"
shell() {
  "$home/bin/spark-shell" --master "$master" --jars "$jars" --executor-cores 1 --executor-memory 2g \
    --driver-memory 2g --conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1 "$@" < benches/cluster/job.scala
}
export BENCH_ROWS="$rows" BENCH_DATA="$work/data" BENCH_MODEL="$root/tests/fixtures/mnist_mlp"
BENCH_PREPARE=1 shell > "$work/prepare.log" 2>&1 || { tail -40 "$work/prepare.log"; exit 1; }
# Each case is an application of its own, so fresh executor JVMs, and times a fresh and a warm run (job.scala).
run() {
  local name="$1"; shift
  out="$(BENCH_CASE="${name%-*}" shell "$@" 2>"$work/$name.log" | tee "$work/$name.out")" || true
  grep -q '^BENCH cluster [a-z]* warm' <<<"$out" || { tail -40 "$work/$name.out"; tail -20 "$work/$name.log"; exit 1; }
  grep -o 'BENCH .*' <<<"$out" | sed "s/^BENCH cluster /BENCH cluster $name /"
}
plugin=(--conf spark.plugins=io.spindle.SpindlePlugin --conf "spark.spindle.warmModels=$BENCH_MODEL")
all="$(run floor; run fit; run fit-plugin "${plugin[@]}"; run scan; run score; run score-plugin "${plugin[@]}")"
echo "$all"
keras="$(.venv/bin/python benches/cluster/keras_fit.py "$rows")"
echo "$keras"
python3 - "$rows" "$all" "$keras" <<'PY'
import re, sys
rows, out, keras = int(sys.argv[1]), sys.argv[2], sys.argv[3]
keras_first, keras_warm = (float(re.search(rf"BENCH keras {n} ([0-9.]+)", keras).group(1)) for n in ("first", "warm"))
def wall(name, run):
    return float(re.search(rf"BENCH cluster {name} \S+ {run} ([0-9.]+)", out).group(1))
for run in ("fresh", "warm"):
    floor = wall("floor", run)
    print(f"== {run} executors. Spark's floor under fit (the same barrier stage reading the same rows, no Spindle): "
          f"{floor:.2f} s")
    for name, case in (("fit", "no plugin"), ("fit-plugin", "SpindlePlugin")):
        w = wall(name, run)
        steps, first = map(float, re.search(
            rf"BENCH cluster {name} fit {run} [0-9.]+ step-sum ([0-9.]+) first-step (-?[0-9.]+)", out).groups())
        print(f"fit, {case}: wall {w:.2f} s | sum of step times {steps:.2f} s | fixed cost {w - steps:.2f} s (target <= 2)"
              f" | first step done {first:.2f} s after the call (target <= 2) | wall - (floor + step sum) "
              f"{w - floor - steps:.2f} s")
        print(f"  {rows / w:,.0f} samples/s; / Keras model.fit = {keras_first / w:.3f} (its first call, "
              f"{rows / keras_first:,.0f} samples/s), {keras_warm / w:.3f} (warm, {rows / keras_warm:,.0f}) (target >= 1.0)")
    scan = wall("scan", run)
    print(f"Spark's floor under transform (every row read into the noop sink): {scan:.2f} s")
    for name, case in (("score", "no plugin"), ("score-plugin", "SpindlePlugin")):
        w = wall(name, run)
        print(f"transform of every row, {case}: {w:.2f} s, {w - scan:.2f} s above the floor")
PY
