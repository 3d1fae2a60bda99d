#!/usr/bin/env bash
# GPU smoke test, for a Linux machine with an NVIDIA GPU and a CUDA 12 driver (none of this project's build machines
# has one, so it has not run on a GPU). Trains the digits example (1 worker) and scores the held-out digits with
# spark-submit on a local-cluster of one 1-core executor, twice: with TensorFlow Java's CPU jar and with its GPU jar
# (tensorflow-core-native 1.2.0, classifier linux-x86_64-gpu), the executor given the first GPU nvidia-smi lists and
# each task that GPU (spark.task.resource.gpu.amount=1). Prints, per build: held-out accuracy, training examples/s and
# the devices each session was loaded on (the runtime's "loaded SavedModel ... on devices" log lines; GPU:0 there is
# the task's GPU). Without nvidia-smi both runs use the CPU and say so.
# Usage: bash benches/gpu-smoke.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup-tensorflow.sh >&2
bash ci/setup-spark.sh >&2
bash ci/setup-python.sh >&2
gpu_jar="$(bash ci/setup-tensorflow.sh gpu)"
read -r assembly cpu_jar examples < <(SBT_NOFORMAT=true ./sbt "print core/assembly" "print libtensorflow/tensorflowJar" \
  "print examples/Compile/packageBin" < /dev/null | grep -E '^/.*\.jar$' | paste -sd' ')
home="$(cat "target/spark-dist/$(sed -n 's/.*spark4 *= *"\([0-9.]*\)".*/\1/p' build.sbt | head -1)/home")"
work="$(mktemp -d /tmp/spindle-gpu-smoke-XXXXXX)"
digits="$(.venv/bin/python -c 'import os, sklearn.datasets as d; print(os.path.join(os.path.dirname(d.__file__), "data", "digits.csv.gz"))')"
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1 SPARK_HOME="$home" SPARK_WORKER_DIR="$work/worker"
gpus=0
resources=()
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
  gpus=1
  cat > "$work/gpus.sh" <<'SH'
#!/usr/bin/env bash
echo "{\"name\": \"gpu\", \"addresses\": [\"$(nvidia-smi --query-gpu=index --format=csv,noheader | head -1)\"]}"
SH
  chmod +x "$work/gpus.sh"
  for who in worker executor; do
    resources+=(--conf "spark.$who.resource.gpu.amount=1" --conf "spark.$who.resource.gpu.discoveryScript=$work/gpus.sh")
  done
  resources+=(--conf spark.task.resource.gpu.amount=1)
  echo "GPU: $(nvidia-smi -L | head -1)" >&2
else
  echo "no nvidia-smi here: both runs use the CPU, so this only checks that the GPU build loads and runs" >&2
fi
for build in cpu gpu; do
  jar="$cpu_jar"; [[ "$build" == gpu ]] && jar="$gpu_jar"
  rm -rf "$work/worker" "$home/work" # local-cluster's executors log under one of them
  variant="-Dspindle.tensorflow.variant=$build"
  "$home/bin/spark-submit" --master "local-cluster[1,1,4096]" --conf spark.ui.enabled=false \
    --conf spark.driver.host=127.0.0.1 --conf "spark.driver.extraJavaOptions=$variant" \
    --conf "spark.executor.extraJavaOptions=$variant" ${resources[@]+"${resources[@]}"} \
    --jars "$assembly,$jar" --class io.spindle.examples.DigitsTraining "$examples" \
    "$digits" tests/fixtures/digits_mlp_init "$work/export-$build" 1 > "$work/$build.out" 2> "$work/$build.log" ||
    { tail -30 "$work/$build.log"; exit 1; }
  accuracy="$(sed -n 's/^held-out accuracy: \([0-9.]*\).*/\1/p' "$work/$build.out")"
  rate="$(sed -n 's/.*, \([0-9]*\) examples\/s;.*/\1/p' "$work/$build.out")"
  devices="$({ grep -rhao 'loaded SavedModel .* on devices .*' "$work/worker" "$home/work" 2> /dev/null || true; } |
    sed 's/.* on devices //' | sort | uniq -c | sed 's/^ *//' | paste -sd';')"
  echo "BENCH gpu-smoke $build: held-out accuracy $accuracy, training $rate examples/s, GPUs given $gpus, sessions on: $devices"
done
