#!/usr/bin/env bash
# Runs every suite (Rust, Python, JVM) from a fresh clone; the last line sums them as 'N passed, N failed'.
# Rust is built once, in release: cargo test --release, and sbt packages that same libspindle_jni.so.
# When something fails, the lines just above the sum name each failed step and test with its first error line:
# a failed submission's report shows only the tail of this log.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Loopback only: Spark would otherwise bind and advertise the host's first non-loopback address.
export TF_CPP_MIN_LOG_LEVEL=2 SBT_NOFORMAT=true SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1
rm -rf target/ci {scala,tests}/target/test-reports {scala,tests}/target/spark-*/test-reports && mkdir -p target/ci
failed=()
durations=()
n=0
# step NAME COMMAND...: runs COMMAND with its output both shown and kept in target/ci/NN.log; on failure, remembers
# NAME and the first line of the output that looks like an error.
step() {
  local name="$1"
  shift
  n=$((n + 1))
  local log="target/ci/$(printf %02d $n).log"
  local started=$SECONDS
  echo "==== $name"
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  # Each step's time, listed at the end: the whole run must stay under 45 minutes on 2 cores.
  durations+=("$(printf '%5d s  %s' $((SECONDS - started)) "$name")")
  if [[ $status -ne 0 ]]; then
    local first
    first="$(grep -m1 -E '\[error\]|^error|error:|FAILED|panicked|Exception|Traceback|^E ' "$log" | cut -c1-300)"
    echo "==== FAILED: $name"
    failed+=("$name: ${first:-exit status non-zero, no error line found; see $log}")
  fi
}

step "setup python (ci/setup-python.sh)" bash ci/setup-python.sh
step "setup tensorflow (ci/setup-tensorflow.sh)" bash ci/setup-tensorflow.sh
step "setup spark distribution (ci/setup-spark.sh)" bash ci/setup-spark.sh
step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy -D warnings" cargo clippy --release --workspace --all-targets -- -D warnings
step "cargo test --release" cargo test --release --workspace
cp "target/ci/$(printf %02d $n).log" target/ci/cargo-test.log
step "pytest" .venv/bin/python -m pytest tests/python -q --junitxml=target/ci/pytest.xml
# Formatting is its own sbt run, so that a misformatted file does not keep the suites from running.
step "scalafmt (./sbt scalafmtCheckAll)" ./sbt scalafmtCheckAll
step "JVM suites (./sbt core/test tests/test)" ./sbt core/test tests/test
# Spindle as a user gets it: the release published to target/maven-repo, then an sbt (Scala) and a Maven (plain Java)
# project outside the build, which know Spindle by its coordinate alone, score the digits model against Python's.
step "external projects (ci/external.sh)" bash ci/external.sh
# The PySpark package as a user installs it: the build's jars packed into a wheel, installed into .venv; its suites
# (stages, spindle.run on local-cluster) and the Python main example run against the installed package.
step "python package (./sbt core/pythonJars; pip install ./python)" \
  bash -c './sbt core/pythonJars < /dev/null && .venv/bin/pip install -q --disable-pip-version-check ./python'
# The release files of that package: sdist and wheel built with PyPA build into target/python-dist, then checked.
step "python release files (ci/python-dist.sh)" bash ci/python-dist.sh
step "PySpark suites (pytest tests/pyspark)" .venv/bin/python -m pytest tests/pyspark -q -p no:cacheprovider \
  --junitxml=target/ci/pytest-pyspark.xml
step "Python main example (examples/python/digits.py)" .venv/bin/python examples/python/digits.py
# The other Spark lines: a smoke subset each (inference, streaming, dtypes; training on executor JVMs), in their own
# target folders. Spark 3.5 / Scala 2.12 runs on the pyspark 3.5.9 distribution; pyspark ships Scala 2.12 only, so
# 3.5 / 2.13 runs on local-cluster with the build's jars.
smoke="core/testOnly io.spindle.SpindleModelSuite io.spindle.StreamingSuite io.spindle.DtypesSuite"
step "Spark 3.5 / Scala 2.12 (smoke, pyspark 3.5.9 distribution)" env SPINDLE_SPARK=3.5 ./sbt "$smoke" \
  "tests/testOnly io.spindle.cluster.DistributionSuite"
step "Spark 3.5 / Scala 2.13 (smoke, local-cluster)" env SPINDLE_SPARK=3.5 ./sbt ++2.13.8 "$smoke" \
  "tests/testOnly io.spindle.cluster.LocalClusterSuite" \
  "tests/testOnly io.spindle.cluster.TrainingClusterSuite -- -z \"two workers on two executor JVMs learn\""

echo "==== time per step"
printf '%s\n' "${durations[@]}"
echo "total $SECONDS s"
echo "==== summary"
for f in "${failed[@]}"; do echo "FAILED STEP $f"; done
status=0
[[ ${#failed[@]} -eq 0 ]] || status=1
python3 ci/summarize.py "$root" || status=1
exit $status
