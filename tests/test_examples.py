"""The examples in examples/ run, on their reduced (quick) configuration.

Both scripts run at the same time in subprocesses (the machine has 2 cores).
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="source checkout only")


def _start(script: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "FUSPLAN_EXAMPLE_QUICK": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def test_examples_run(tmp_path):
    sweep = _start("batch_sweep.py", "--out", str(tmp_path / "sweep"), "--workers", "1", cwd=tmp_path)
    teach = _start("teaching_demo.py", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    code, out, err = _finish(sweep)
    assert code == 0, err
    with open(tmp_path / "sweep" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert "240 CEM43 diameter mm" in out
    again = _start("batch_sweep.py", "--out", str(tmp_path / "sweep"), "--workers", "1", cwd=tmp_path)

    code, out, err = _finish(teach)
    assert code == 0, err
    for name in ("focus.png", "stages.png", "procedure.gif", "demo.md"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
    notes = (tmp_path / "demo" / "demo.md").read_text()
    assert "## The stages" in notes and "240 CEM43" in notes

    code, out, err = _finish(again)
    assert code == 0 and "(4 resumed, 0 failed)" in out
