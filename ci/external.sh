#!/usr/bin/env bash
# Spindle as a user gets it: publishes the release to the build's local Maven repository (target/maven-repo), then
# builds and runs two projects that know Spindle only by its published coordinate, each scoring the digits model and
# checking every probability against Python TensorFlow's (tests/fixtures/digits_expected.csv):
#   examples/external-sbt    a Scala sbt project, "io.spindle" %% "spindle-spark4" % <version>
#   examples/external-maven  a plain Java Maven project, io.spindle:spindle-spark4_2.13:<version>
# Writes target/ci/external.xml (JUnit, one testcase per project) for ci/summarize.py, and each project's output to
# target/ci/external-{sbt,maven}.log. Exits non-zero when the publish or either project fails.
#
# SPINDLE_SKIP_PUBLISH=1 uses target/maven-repo as it is (already published).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1 TF_CPP_MIN_LOG_LEVEL=2
mkdir -p target/ci
repo="file://$root/target/maven-repo/"
results=target/ci/external.results # one line per project: name<TAB>seconds<TAB>error (empty when it passed)
: >"$results"

# junit: target/ci/external.xml from the results, each failure carrying its error line and the tail of its log.
junit() {
  python3 - "$results" target/ci/external.xml <<'EOF'
import re
import sys
import xml.etree.ElementTree as ET

# Terminal colour codes and other control characters have no place in XML 1.0.
def text(s):
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s))

rows = [line.rstrip("\n").split("\t", 3) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
suite = ET.Element("testsuite", name="external", tests=str(len(rows)),
                   failures=str(sum(1 for r in rows if r[2])), errors="0", skipped="0",
                   time=str(sum(float(r[1]) for r in rows)))
for name, seconds, error, log in rows:
    case = ET.SubElement(suite, "testcase", classname="external", name=name, time=seconds)
    if error:
        try:
            tail = "".join(open(log, encoding="utf-8", errors="replace").readlines()[-40:])
        except OSError:
            tail = ""
        ET.SubElement(case, "failure", message=text(error)).text = text(tail)
ET.ElementTree(suite).write(sys.argv[2], encoding="utf-8", xml_declaration=True)
EOF
}

# project NAME LOG COMMAND...: runs COMMAND with its output shown and kept in LOG; records its time and, on failure,
# its first error line.
project() {
  local name="$1" log="$2"
  shift 2
  echo "---- $name"
  local start=$SECONDS
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]} error=""
  local took=$((SECONDS - start))
  if [[ $rc -ne 0 ]]; then
    error="$({ grep -m1 MISMATCH "$log" || grep -m1 -E '\[error\]|\[ERROR\]|Exception|Error:' "$log"; } |
      sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | cut -c1-300)"
    error="${error:-exit status $rc, no error line found; see $log}"
    echo "---- FAILED: $name ($took s): $error"
  else
    echo "---- passed: $name ($took s)"
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$took" "${error//$'\t'/ }" "$log" >>"$results"
}

if [[ -z "${SPINDLE_SKIP_PUBLISH:-}" ]]; then
  echo "---- publish (./sbt core/publish libtensorflow/publish)"
  if ! ./sbt core/publish libtensorflow/publish </dev/null; then
    for name in "sbt project (examples/external-sbt)" "Maven project (examples/external-maven)"; do
      printf '%s\t0\tpublish failed: ./sbt core/publish libtensorflow/publish\t\n' "$name" >>"$results"
    done
    junit
    exit 1
  fi
fi

# sbt: the launcher the repo's ./sbt uses, but with the project's own repositories file (Maven Central and the
# repository named by -Dspindle.repo): ./sbt would impose the main build's, which lacks target/maven-repo.
sbt_version="$(sed -n 's/^sbt.version=//p' examples/external-sbt/project/build.properties)"
sbt_jar="$HOME/.m2/repository/org/scala-sbt/sbt-launch/$sbt_version/sbt-launch-$sbt_version.jar"
[[ -f "$sbt_jar" ]] ||
  mvn -q -B dependency:get -Dartifact="org.scala-sbt:sbt-launch:$sbt_version" -Dtransitive=false
external_sbt() (
  cd examples/external-sbt &&
    java -Xms512m -Xmx2g -Xss4m \
      -Dsbt.repository.config=project/repositories -Dsbt.override.build.repos=true -Dspindle.repo="$repo" \
      -Dsbt.log.noformat=true -Dsbt.supershell=false -Dsbt.server.forcestart=false \
      -jar "$sbt_jar" run </dev/null
)
project "sbt project (examples/external-sbt)" target/ci/external-sbt.log external_sbt

# Maven copies what it resolves into ~/.m2 and never fetches a release again: drop its copies of Spindle, so that the
# run takes the jars just published.
rm -rf "$HOME/.m2/repository/io/spindle"
project "Maven project (examples/external-maven)" target/ci/external-maven.log \
  mvn -B -ntp -Dstyle.color=never -f examples/external-maven/pom.xml compile exec:exec -Dspindle.repo="$repo"

junit
echo "---- external projects:"
cut -f1-3 "$results" |
  awk -F'\t' '{ printf "  %s: %s (%s s)%s\n", $1, ($3 == "" ? "passed" : "FAILED"), $2, ($3 == "" ? "" : " " $3) }'
! cut -f3 "$results" | grep -q .
