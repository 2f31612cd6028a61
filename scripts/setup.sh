#!/usr/bin/env bash
# Create .venv (if missing) and install fusplan into it, editable.
#   scripts/setup.sh            core library + CLI
#   scripts/setup.sh test       + napari plugin, dask and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
    .venv/bin/python -m pip install --quiet -e .
fi
