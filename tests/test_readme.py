"""Every code block in the README runs, so a README example cannot rot unnoticed.

Blocks are taken from the README in order. ``python`` blocks run as one script each and
``bash`` blocks line by line under ``set -e``, in a scratch folder that links the
repository's ``sample_data``, ``src`` and ``examples`` (so relative paths work and the
outputs never land in the working tree), with this interpreter's ``fusplan`` first on
``PATH``. ``text`` blocks are synopses, not code. A block preceded by
``<!-- readme-test: skip (reason) -->`` is not run here, and the reason says what runs
it instead (e.g. the quick start, which CI itself runs).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+?)\)\s*-->\s*$")
LANGUAGES = {"bash": "run", "python": "run", "text": "synopsis", "yaml": "data", "json": "data"}


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    skip_reason: str | None

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def readme_blocks(text: str) -> list[Block]:
    """The README's fenced code blocks, with the skip marker of the line above each."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        marker = SKIP.search(before[-1]) if before else None
        blocks.append(Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1,
                            marker.group(1) if marker else None))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if LANGUAGES.get(b.language) == "run" and b.skip_reason is None]


def test_every_block_says_what_it_is():
    assert BLOCKS, "no code blocks found: the parser is broken"
    for block in BLOCKS:
        assert block.language in LANGUAGES, f"{block.name}: give the fence a language ({', '.join(LANGUAGES)})"
    assert len(RUNNABLE) >= 2


def test_the_parser_sees_skips_and_languages():
    text = "a\n<!-- readme-test: skip (CI runs it) -->\n```bash\nscripts/x.sh\n```\n\n```python\nprint(1)\n```\n"
    skipped, run = readme_blocks(text)
    assert (skipped.language, skipped.skip_reason, skipped.line) == ("bash", "CI runs it", 3)
    assert (run.language, run.code, run.skip_reason) == ("python", "print(1)\n", None)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A scratch folder where the README's relative paths resolve; blocks share it in order."""
    folder = tmp_path_factory.mktemp("readme")
    for name in ("sample_data", "src", "examples"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    return folder


def _run(block: Block, folder: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if block.language == "python":
        command = [sys.executable, "-c", block.code]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_block_runs(block, workspace):
    result = _run(block, workspace)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stderr[-3000:]}"
    leftovers = [p.name for p in ROOT.glob("*.npz")]
    assert not leftovers, f"{block.name} wrote into the repository: {leftovers}"
