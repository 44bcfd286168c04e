#!/usr/bin/env bash
# Prints the path of a Python >= 3.13 interpreter, or fails with one line.
# The stdlib of 3.11/3.12 ships its own `pipes` module, which would shadow ours,
# so an older interpreter is never an acceptable fallback.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; }
for cand in "${PYTHON:-}" python3.14 python3.13 python3; do
  [ -n "$cand" ] || continue
  p=$(command -v "$cand" 2>/dev/null) || continue
  if ok "$p"; then echo "$p"; exit 0; fi
done
for root in "${PYENV_ROOT:-$HOME/.pyenv}/versions" /usr/local/bin /opt/python; do
  for p in $(ls -d "$root"/3.1[3-9]*/bin/python3 "$root"/python3.1[3-9] 2>/dev/null | sort -rV); do
    if ok "$p"; then echo "$p"; exit 0; fi
  done
done
for v in 3.13.0 3.13 3.14; do
  p=$(PYENV_VERSION=$v pyenv which python3 2>/dev/null) || continue
  if ok "$p"; then echo "$p"; exit 0; fi
done
echo "no Python >= 3.13 found: install one (e.g. pyenv install 3.13) or set PYTHON=/path/to/python3.13" >&2
exit 1
