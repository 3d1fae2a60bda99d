#!/usr/bin/env bash
# Fixed cost of training on a real cluster. Starts a standalone master and one worker (2 cores, so 2 executors x 1
# core, fresh executor JVMs) from the pyspark distribution on loopback, writes rows x 784 float32 to Parquet in a first
# application, then in a second one times SpindleEstimator.fit of the MLP 784-128-10 (mnist_mlp), 1 epoch, batch 128
# per worker, 2 workers, with both executors up. Prints, from that one run: fit's wall time, the sum of its step times,
# call -> first step done, and plain in-process Keras model.fit on the same shape of data and the same two cores.
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
    --driver-memory 2g --conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1 < benches/cluster/job.scala
}
export BENCH_ROWS="$rows" BENCH_DATA="$work/data" BENCH_MODEL="$root/tests/fixtures/mnist_mlp"
BENCH_PREPARE=1 shell > "$work/prepare.log" 2>&1 || { tail -40 "$work/prepare.log"; exit 1; }
out="$(shell 2>"$work/fit.log" | tee "$work/fit.out")" || true
grep -q '^BENCH cluster fit-wall' <<<"$out" || { tail -40 "$work/fit.out"; tail -20 "$work/fit.log"; exit 1; }
grep -o 'BENCH .*' <<<"$out"
keras="$(.venv/bin/python benches/cluster/keras_fit.py "$rows")"
echo "$keras"
python3 - "$rows" "$out" "$keras" <<'PY'
import re, sys
rows = int(sys.argv[1])
wall, steps, first = map(float, re.search(r"fit-wall ([0-9.]+) step-sum ([0-9.]+) first-step (-?[0-9.]+)", sys.argv[2]).groups())
keras_first, keras_warm = (float(re.search(rf"BENCH keras {n} ([0-9.]+)", sys.argv[3]).group(1)) for n in ("first", "warm"))
ready = re.search(r"executors-ready ([0-9.]+)", sys.argv[2])
if ready:
    print(f"registered executors -> ready for tasks (jar fetch; before fit, untimed) {float(ready.group(1)):.2f} s")
print(f"fit wall {wall:.2f} s | sum of step times {steps:.2f} s | fixed cost {wall - steps:.2f} s (target <= 2)")
print(f"fit called -> first step done {first:.2f} s (target <= 2)")
print(f"fit {rows / wall:,.0f} samples/s | Keras model.fit {rows / keras_first:,.0f} samples/s first call, "
      f"{rows / keras_warm:,.0f} warm")
print(f"fit / Keras = {keras_first / wall:.3f} (first call), {keras_warm / wall:.3f} (warm)  (target >= 1.0)")
PY
