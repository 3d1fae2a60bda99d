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
# tf-keras (legacy Keras 2) for tests/fixtures/make_corpus.py's tf_keras2_savedmodel: --no-deps, so that it leaves
# the pinned tensorflow-cpu alone (kept out of requirements.txt for the same reason).
tf_keras="2.21.0"
if ! "$root/.venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('tf-keras') != '$tf_keras')" 2>/dev/null; then
  "$root/.venv/bin/pip" install -q --disable-pip-version-check --no-deps "tf-keras==$tf_keras"
fi
# tensorflow-text (its op libraries, for tests/fixtures/make_text_ops.py and the suites that load them through
# opLibraries): --no-deps as well, since it requires `tensorflow`, which would install a second TensorFlow beside
# tensorflow-cpu. sentencepiece (requirements.txt) trains the fixtures' tiny SentencePiece model.
tf_text="2.21.1"
if ! "$root/.venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('tensorflow-text') != '$tf_text')" 2>/dev/null; then
  "$root/.venv/bin/pip" install -q --disable-pip-version-check --no-deps "tensorflow-text==$tf_text"
fi
