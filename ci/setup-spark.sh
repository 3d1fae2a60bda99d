#!/usr/bin/env bash
# Real Spark distributions from PyPI: the pyspark package of each Spark line the build makes (build.sbt's spark4 and
# spark35) carries bin/spark-shell, bin/spark-submit and sbin/. Each is installed into target/spark-dist/<version>/venv
# (ignored); its directory is written to target/spark-dist/<version>/home, which DistributionSuite reads.
# Quick when already installed. Arguments, when given, name the versions instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
versions=("$@")
[[ $# -gt 0 ]] || mapfile -t versions < <(sed -n 's/^val spark[0-9]* = "\([^"]*\)".*/\1/p' "$root/build.sbt")
[[ ${#versions[@]} -gt 0 ]] || { echo "[spark] no val spark<line> = \"<version>\" in build.sbt" >&2; exit 1; }
for version in "${versions[@]}"; do
dir="$root/target/spark-dist/$version"
if [[ ! -f "$dir/home" ]]; then
  rm -rf "$dir" && mkdir -p "$dir"
  python3 -m venv "$dir/venv"
  # Spark 4's with its Connect client's dependencies (pandas, pyarrow, grpcio), for DistributionSuite's Connect test.
  spec="pyspark==$version"
  # pandas 3 draws a warning that pyspark 4.2 does not fully support it.
  [[ $version == 3.* ]] || spec="pyspark[connect]==$version pandas<3"
  # shellcheck disable=SC2086 # two words when Spark 4's
  "$dir/venv/bin/pip" install -q --disable-pip-version-check $spec
  "$dir/venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' > "$dir/home.tmp"
  chmod +x "$(cat "$dir/home.tmp")"/bin/* "$(cat "$dir/home.tmp")"/sbin/* 2>/dev/null || true
  mv "$dir/home.tmp" "$dir/home"
fi
echo "[spark] distribution $version in $(cat "$dir/home")"
done
