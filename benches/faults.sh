#!/usr/bin/env bash
# Faults at eight hosts: tests/src/test/scala/io/spindle/cluster/EightHostsSuite.scala on eight emulated hosts
# (tests/netns/hosts.sh, root needed): 8 workers exact against 1 worker with 8x the batch, then kill -9 of an executor
# (training resumes), SIGSTOP of one (fit fails naming the rank and host) and a host's link cut with minWorkers 7 (the
# survivors go on), each within 120 s. Eighteen JVMs share the machine (a master, 8 workers, 8 executors, the driver):
# CI runs the four-host ElasticSuite instead. Prints each test's figures (the `+` lines).
# Usage: bash benches/faults.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup-python.sh >&2
bash ci/setup-tensorflow.sh >&2
bash ci/setup-spark.sh >&2
export SPINDLE_EIGHT_HOSTS=1 TF_CPP_MIN_LOG_LEVEL=2 SPARK_LOCAL_IP=127.0.0.1 SBT_NOFORMAT=true
./sbt "tests/testOnly io.spindle.cluster.EightHostsSuite" < /dev/null
