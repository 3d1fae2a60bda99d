#!/usr/bin/env bash
# A real Spark distribution from PyPI: the pyspark package of the build's Spark version carries bin/spark-shell,
# bin/spark-submit and sbin/start-master.sh / start-worker.sh. Installed into target/spark-dist/<version>/venv
# (ignored); writes the distribution's directory to target/spark-dist/<version>/home, which DistributionSuite reads.
# Quick when already installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^val sparkVersion = "\([^"]*\)".*/\1/p' "$root/build.sbt")"
dir="$root/target/spark-dist/$version"
if [[ ! -f "$dir/home" ]]; then
  rm -rf "$dir" && mkdir -p "$dir"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q --disable-pip-version-check "pyspark==$version"
  "$dir/venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' > "$dir/home.tmp"
  chmod +x "$(cat "$dir/home.tmp")"/bin/* "$(cat "$dir/home.tmp")"/sbin/* 2>/dev/null || true
  mv "$dir/home.tmp" "$dir/home"
fi
echo "[spark] distribution $version in $(cat "$dir/home")"
