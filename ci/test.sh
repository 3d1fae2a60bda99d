#!/usr/bin/env bash
# Runs every suite (Rust, Python, JVM) from a fresh clone; the last line sums them as 'N passed, N failed'.
# Rust is built once, in release: cargo test --release, and sbt packages that same libspindle_jni.so.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=2 SBT_NOFORMAT=true
status=0
step() { echo "==== $*"; "$@" || { echo "==== FAILED: $*"; status=1; }; }

step bash ci/setup-python.sh
step bash ci/setup-tensorflow.sh
rm -rf target/ci scala/target/test-reports tests/target/test-reports && mkdir -p target/ci

step cargo fmt --all --check
step cargo clippy --release --workspace --all-targets -- -D warnings
echo "==== cargo test --release"
cargo test --release --workspace 2>&1 | tee target/ci/cargo-test.log
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "==== pytest"
.venv/bin/python -m pytest tests/python -q --junitxml=target/ci/pytest.xml || status=1

# Formatting is its own sbt run, so that a misformatted file does not keep the suites from running.
step ./sbt scalafmtCheckAll
step ./sbt core/test tests/test

python3 ci/summarize.py "$root" || status=1
exit $status
