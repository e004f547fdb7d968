#!/usr/bin/env bash
# Install everything the project needs into .venv (idempotent; re-installs when pyproject changes).
# Works on a fresh Debian 12 machine with Python 3.11: no step downloads anything but packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv/.tthc-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing Python packages into .venv (first run takes about a minute)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import airflow, great_expectations, tthc" 2>/dev/null \
  || { echo "setup: install failed" >&2; exit 1; }
echo "$want" > "$stamp"
