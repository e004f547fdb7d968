#!/usr/bin/env bash
# Installs Debian's Chromium for the plugin's browser test (tests/plugin/test_browser.py).
# Idempotent: does nothing when a chromium binary is already on PATH. Needs root (apt-get).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium
