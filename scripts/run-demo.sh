#!/usr/bin/env bash
# Quick start 1: set up and run the main job on the bundled sample scan.
# Output goes to ./fusplan-out (or the folder given as first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/fusplan demo --out "${1:-fusplan-out}"
