"""Sums every suite's results into the closing line 'N passed, N failed'.

Reads cargo test's text output (its 'test result:' lines) and the JUnit XML reports that pytest
(--junitxml), sbt (target/**/test-reports) and ci/external.sh (target/ci/external.xml) write. A suite
that wrote no result counts as one failure, so a run can never pass by testing nothing.
"""
import glob
import re
import sys
import xml.etree.ElementTree as ET

# sbt's reports: target/test-reports for the main Spark line, target/spark-<line>_<scala>/test-reports for the others.
JVM_REPORTS = "{root}/**/target/**/test-reports/*.xml"


def cargo(log):
    passed = failed = 0
    try:
        text = open(log, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
        passed += int(m.group(1))
        failed += int(m.group(2))
    return (passed, failed) if passed + failed else None


def junit(pattern):
    passed = failed = 0
    for path in sorted(set(glob.glob(pattern, recursive=True))):
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
        for s in suites:
            tests = int(s.get("tests", 0))
            bad = int(s.get("failures", 0)) + int(s.get("errors", 0))
            skipped = int(s.get("skipped", 0))
            passed += tests - bad - skipped
            failed += bad
    return (passed, failed) if passed + failed else None


def first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def failed_tests(root):
    """Names of failed tests with the first line of their error: cargo's 'test X ... FAILED' (and its panic
    message), and every JUnit testcase holding a failure or error."""
    found = []
    try:
        text = open(f"{root}/target/ci/cargo-test.log", encoding="utf-8", errors="replace").read()
    except OSError:
        text = ""
    for m in re.finditer(r"^test (\S+) \.\.\. FAILED$", text, re.M):
        panic = re.search(r"---- " + re.escape(m.group(1)) + r" stdout ----\n(?:.*\n)*?.*panicked at [^\n]*\n([^\n]*)", text)
        found.append(f"rust {m.group(1)}: {panic.group(1).strip()[:300] if panic else 'see cargo-test.log'}")
    for pattern in ("{root}/target/ci/pytest.xml", "{root}/target/ci/pytest-pyspark.xml", JVM_REPORTS,
                    "{root}/target/ci/external.xml"):
        for path in sorted(set(glob.glob(pattern.format(root=root), recursive=True))):
            for case in ET.parse(path).getroot().iter("testcase"):
                for bad in list(case.findall("failure")) + list(case.findall("error")):
                    why = first_line(bad.get("message")) or first_line(bad.text)
                    line = re.search(r"target/(spark-[^/]+)/test-reports", path)  # a Spark line other than the main one
                    where = f"[{line.group(1)}] " if line else ""
                    found.append(f"{where}{case.get('classname')} \"{case.get('name')}\": {why}")
    return found


def main(root):
    results = {
        "rust": cargo(f"{root}/target/ci/cargo-test.log"),
        "python": junit(f"{root}/target/ci/pytest.xml"),
        "pyspark": junit(f"{root}/target/ci/pytest-pyspark.xml"),
        "jvm": junit(JVM_REPORTS.format(root=root)),
        "external": junit(f"{root}/target/ci/external.xml"),
    }
    for line in failed_tests(root)[:20]:
        print(f"FAILED TEST {line}")
    total_p = total_f = 0
    for name, r in results.items():
        if r is None:
            print(f"{name}: no test results found (counted as 1 failure)")
            r = (0, 1)
        else:
            print(f"{name}: {r[0]} passed, {r[1]} failed")
        total_p += r[0]
        total_f += r[1]
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
