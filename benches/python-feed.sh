#!/usr/bin/env bash
# Rows/s into a spindle.run script's tf.data pipeline (spindle.data) vs Spark's scan of the same cached DataFrame vs
# PySpark's mapPartitions + pickle, same run (benches/python/feed_bench.py). Needs the installed package:
#   ./sbt core/pythonJars && .venv/bin/pip install ./python
# Usage: bash benches/python-feed.sh [rows=60000] [repeats=3]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1 TF_CPP_MIN_LOG_LEVEL=2
cd /tmp && exec "$root/.venv/bin/python" "$root/benches/python/feed_bench.py" "$@"
