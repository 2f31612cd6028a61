"""scripts/setup.sh (used by run-demo.sh and run-tests.sh) runs pip only when pyproject.toml changed."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "scripts" / "setup.sh").is_file() or shutil.which("bash") is None,
                                reason="source checkout with bash only")

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../../calls.log"
"""


def _checkout(tmp_path: Path) -> Path:
    """A copy of setup.sh and pyproject.toml with a fake .venv whose python logs its arguments."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def _pip_calls(root: Path) -> int:
    log = root / "calls.log"
    return sum("pip install" in line for line in log.read_text().splitlines()) if log.is_file() else 0


def test_setup_runs_pip_only_when_pyproject_changed(tmp_path):
    root = _checkout(tmp_path)
    run = ["bash", str(root / "scripts" / "setup.sh")]
    subprocess.run(run, check=True, timeout=60)
    installed = _pip_calls(root)
    assert installed >= 1
    subprocess.run(run, check=True, timeout=60)
    assert _pip_calls(root) == installed  # nothing changed: no pip
    subprocess.run([*run, "test"], check=True, timeout=60)
    assert _pip_calls(root) > installed  # other extras: install
    installed = _pip_calls(root)
    with open(root / "pyproject.toml", "a") as handle:
        handle.write("\n# changed\n")
    subprocess.run(run, check=True, timeout=60)
    assert _pip_calls(root) > installed  # pyproject changed: install again


def _readme_outputs() -> set[str]:
    """Outputs the README's shell examples write: ``--out DIR`` and ``> FILE`` in bash blocks."""
    import re

    from test_readme import BLOCKS

    found = set()
    for block in (b for b in BLOCKS if b.language == "bash"):
        found.update(re.findall(r"--out\s+([\w.-]+)", block.code))
        found.update(re.findall(r">\s*([\w.-]+\.\w+)", block.code))
    return found - {"DIR"}


def test_outputs_of_the_readme_scripts_and_examples_are_git_ignored(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    defaults = {"fusplan-out", "fusplan-demo", "fusplan-batch", "sweep-out", "demo-out"}  # run-demo.sh, CLI, examples
    outputs = _readme_outputs()
    assert {"target-out", "plan-out", "phantom.json"} <= outputs  # the README still shows these examples
    for name in sorted(outputs | defaults):
        path = name if Path(name).suffix else name + "/"  # folders: git only knows them by the slash
        result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, timeout=30)
        assert result.returncode == 0, f"{name} (written by a README example) is not git-ignored"
