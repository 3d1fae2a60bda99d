#!/usr/bin/env bash
# Builds the PySpark package's release files, the sdist and the wheel of python/, with PyPA build into
# target/python-dist, and checks them as a user would meet them:
# * both files are there and carry the version of python/pyproject.toml, in their names and their metadata;
# * the wheel holds the jars a session needs (python/spindle/jars, which `./sbt core/pythonJars` fills: run that
#   first), Spindle's own at the package's version;
# * the wheel installs into a fresh venv, with its declared dependencies (numpy) and no optional one, where
#   `import spindle` gives that version and spindle.jars() finds the packed jars.
# The sdist is built first and the wheel from the unpacked sdist (build's default), so a file the sdist lacks fails
# the wheel too. Both must carry the LICENSE (python/LICENSE links the repository's).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_version="1.6.1" # PyPA build
out="$root/target/python-dist"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' python/pyproject.toml)"
[[ -n "$version" ]] || { echo "error: no version = \"...\" line in python/pyproject.toml" >&2; exit 1; }
tmp="$(mktemp -d /tmp/spindle-python-dist.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

echo "---- build $version (PyPA build $build_version) into target/python-dist"
python3 -m venv "$tmp/build-venv"
"$tmp/build-venv/bin/pip" install -q --disable-pip-version-check "build==$build_version"
rm -rf "$out"
start=$SECONDS
"$tmp/build-venv/bin/python" -m build --outdir "$out" python
echo "built in $((SECONDS - start)) s:"
ls -l "$out"

echo "---- check the files"
python3 - "$out" "$version" <<'EOF'
import email.parser
import glob
import os
import re
import sys
import tarfile
import zipfile

out, version = sys.argv[1], sys.argv[2]
errors = []


def one(pattern):
    found = glob.glob(os.path.join(out, pattern))
    if len(found) != 1:
        errors.append(f"expected one {pattern} in {out}, found {[os.path.basename(f) for f in found]}")
        return None
    return found[0]


def meta_version(text):
    return email.parser.Parser().parsestr(text).get("Version")


wheel = one(f"*-{version}-py3-none-any.whl")
sdist = one(f"*-{version}.tar.gz")
if wheel:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        got = meta_version(z.read(metadata).decode()) if metadata else None
        if got != version:
            errors.append(f"wheel METADATA Version is {got}, want {version}")
        jars = sorted(n for n in names if re.match(r"spindle/jars/[^/]+\.jar$", n))
        print(f"wheel {os.path.basename(wheel)}: {os.path.getsize(wheel) / 2**20:.1f} MiB, METADATA Version {got}")
        for n in jars:
            print(f"  {n} ({z.getinfo(n).file_size / 2**20:.1f} MiB)")
        if not any(re.match(r"spindle/jars/spindle-libtensorflow-.*\.jar$", n) for n in jars):
            errors.append("the wheel holds no spindle-libtensorflow jar: run ./sbt core/pythonJars before this script")
        spindle_jars = [n for n in jars if re.match(r"spindle/jars/spindle-spark", n)]
        if not spindle_jars:
            errors.append("the wheel holds no spindle-spark jar: run ./sbt core/pythonJars before this script")
        for n in spindle_jars:
            if not n.endswith(f"-{version}.jar"):
                errors.append(f"the wheel packs {n}, not the {version} jar: python/spindle/jars is stale, "
                              "run ./sbt core/pythonJars")
        for module in ("spindle/__init__.py", "spindle/ml.py", "spindle/keras/__init__.py"):
            if module not in names:
                errors.append(f"the wheel lacks {module}")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            errors.append("the wheel carries no LICENSE (pyproject.toml's license-files)")
if sdist:
    with tarfile.open(sdist) as t:
        members = t.getnames()
        top = members[0].split("/")[0]
        info = t.extractfile(f"{top}/PKG-INFO").read().decode() if f"{top}/PKG-INFO" in members else ""
        got = meta_version(info) if info else None
        if got != version:
            errors.append(f"sdist PKG-INFO Version is {got}, want {version}")
        rel = sorted(m[len(top) + 1:] for m in members if m.startswith(top + "/") and t.getmember(m).isfile())
        print(f"sdist {os.path.basename(sdist)}: {os.path.getsize(sdist) / 2**20:.1f} MiB, PKG-INFO Version {got}, "
              f"{len(rel)} files")
        for r in rel:
            print(f"  {r}")
        for needed in ("LICENSE", "README.md"):
            if needed not in rel:
                errors.append(f"the sdist lacks {needed}")
for e in errors:
    print(f"error: {e}")
sys.exit(1 if errors else 0)
EOF

echo "---- install the wheel into a fresh venv and import it"
python3 -m venv "$tmp/install-venv"
# With its declared dependencies (numpy alone: `import spindle` imports spindle.data, which needs it), none of the
# optional ones: so the metadata is checked too.
"$tmp/install-venv/bin/pip" install -q --disable-pip-version-check "$out"/*-"$version"-py3-none-any.whl
"$tmp/install-venv/bin/pip" list --disable-pip-version-check --format=freeze
# From /tmp, so that the checkout's python/spindle cannot be the one imported.
(cd "$tmp" && env -u SPINDLE_JARS "$tmp/install-venv/bin/python" - "$version" <<'EOF'
import os
import sys

import spindle

want = sys.argv[1]
assert spindle.__file__.startswith(sys.prefix), f"imported {spindle.__file__}, not the installed package"
assert spindle.__version__ == want, f"spindle.__version__ is {spindle.__version__!r}, want {want!r}"
jars = spindle.jars()
assert jars and all(os.path.isfile(j) for j in jars), f"spindle.jars() = {jars}"
print(f"import spindle: __version__ {spindle.__version__} from {os.path.dirname(spindle.__file__)}")
print(f"spindle.jars(): {[os.path.basename(j) for j in jars]}")
EOF
)
echo "---- python dist: passed"
