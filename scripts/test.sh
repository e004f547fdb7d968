#!/usr/bin/env bash
# The test command: lint, then the whole suite. Under CI=true, tests needing PostgreSQL/MariaDB
# fail instead of skipping (see tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
bash scripts/install-chromium.sh   # Debian's chromium for the UI test in a real browser
exec .venv/bin/python -m pytest "$@"
