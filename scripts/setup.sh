#!/usr/bin/env bash
# Create .venv (if missing) and install fusplan into it, editable.
#   scripts/setup.sh            core library + CLI
#   scripts/setup.sh test       + napari plugin, dask and the test tools
# pip runs only when pyproject.toml (or the extras) changed since the last install:
# a stamp in .venv records its hash (the install is editable, so code changes need no pip).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.fusplan-setup${extras:+-$extras}"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1) ${extras}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && .venv/bin/python -c "import fusplan" 2>/dev/null; then
    exit 0  # nothing changed since the last install
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
    .venv/bin/python -m pip install --quiet -e .
fi
echo "$wanted" > "$stamp"
