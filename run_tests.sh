#!/usr/bin/env bash
# Installs the test dependencies into ./venv-test and runs the test suite.
# Usage: ./run_tests.sh [extra pytest args]    (slow checks: ./run_tests.sh -m slow)
# The venv sees system site-packages, so an already installed torch is reused instead of downloaded again.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV="${TEST_VENV_DIR:-venv-test}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --disable-pip-version-check -q -r requirements-test.txt
# k-diffusion is only the sampler oracle; its PyPI release pulls wandb, clean-fid and more that it never needs here.
"$PY" -m pip install --disable-pip-version-check -q --no-deps "k-diffusion==0.1.1.post1"

# Browser tests drive Debian's Chromium through Playwright (Playwright cannot download browsers here).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "warning: could not install chromium; browser tests will be skipped"
fi

"$PY" -m ruff check .
"$PY" -m mypy
exec "$PY" -m pytest "$@"
