#!/usr/bin/env bash
# Creates .venv (ignored) with python/requirements.txt from PyPI; quick when already satisfied.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -x "$root/.venv/bin/python" ]]; then python3 -m venv "$root/.venv"; fi
stamp="$root/.venv/.requirements.sha1"
want="$(sha1sum "$root/python/requirements.txt" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  "$root/.venv/bin/pip" install -q --disable-pip-version-check -r "$root/python/requirements.txt"
  echo "$want" > "$stamp"
fi
