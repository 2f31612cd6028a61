"""The pipeline runs one way: no core module imports a module of a higher layer.

Reads the import statements (also the ones inside functions) of every core module;
``if TYPE_CHECKING:`` imports (annotations only) are allowed.
"""
import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "fusplan"

#: Layer of every core module: a module may import only from lower layers.
LAYERS = {
    "errors": 0,
    "grid": 1, "io": 1, "dose": 1, "tissue": 1, "thermometry": 1, "timeline": 1,
    "atlas": 2, "acoustics": 2, "bioheat": 2, "figures": 2,
    "template": 3, "lesion": 3, "protocol": 3,
    "registration": 4,
    "targeting": 5, "samples": 5,
    "planner": 6, "qc": 6,
    "report": 7,
}


def _files(name: str) -> list[Path]:
    package = SOURCE / name
    return sorted(package.glob("*.py")) if package.is_dir() else [SOURCE / f"{name}.py"]


def _imported(path: Path) -> set[str]:
    """fusplan modules imported by ``path``, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree)
               if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for child in block.body for node in ast.walk(child)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 or module.startswith("fusplan"):
                parts = module.removeprefix("fusplan").lstrip(".").split(".")
                names |= {parts[0]} if parts[0] else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fusplan.")}
    return names & set(LAYERS)


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_module_imports_only_lower_layers(module):
    for path in _files(module):
        higher = {name for name in _imported(path) if name != module and LAYERS[name] >= LAYERS[module]}
        assert not higher, f"{path.name} (layer {LAYERS[module]}) imports {sorted(higher)}"
