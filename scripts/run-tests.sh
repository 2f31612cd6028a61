#!/usr/bin/env bash
# Quick start 2: set up and run the whole test suite (GUI tests under Xvfb).
# As root on Debian/Ubuntu it installs the X server and Qt libraries napari needs;
# otherwise it says which are missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
apt_packages=(xvfb xauth libegl1 libgl1 libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon0
    libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1)
missing=()
if command -v dpkg-query >/dev/null; then
    for package in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing system packages for the GUI tests: ${missing[*]}" >&2
        echo "install them (sudo apt-get install ${missing[*]}) or run: scripts/run-tests.sh -m 'not gui'" >&2
        exit 1
    fi
fi
scripts/setup.sh test
# One BLAS thread per process: the solvers use their own parallelism and CI has 2 cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest "$@"
