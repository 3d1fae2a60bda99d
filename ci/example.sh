#!/usr/bin/env bash
# The main example: builds Spindle, trains on 2 workers, evaluates and scores scikit-learn's handwritten digits on an embedded local Spark.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup-python.sh
digits="$(.venv/bin/python -c 'import os, sklearn.datasets as d; print(os.path.join(os.path.dirname(d.__file__), "data", "digits.csv.gz"))')"
SBT_NOFORMAT=true ./sbt "examples/runMain io.spindle.examples.DigitsTraining $digits"
