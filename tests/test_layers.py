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
    "errors": 0, "progress": 0, "threads": 0, "dose": 0, "grid": 0, "thermometry": 0, "timeline": 0,
    "textfile": 1, "tissue": 1, "execution": 1, "acpc": 1,
    "nifti_check": 2, "outputs": 2, "registration_file": 2,
    "io": 3,
    "atlas": 4, "acoustics": 4, "bioheat": 4, "figures": 4, "lesion": 4,
    "template": 5, "protocol": 5, "clinical": 5, "focusmodel": 5,
    "registration": 6, "spot": 6,
    "targeting": 7, "samples": 7, "skull": 7,
    "results": 8, "measured": 8, "teaching": 8, "clinical_summary": 8,
    "planner": 9, "qc": 9, "calibration": 9, "uncertainty": 9,
    "report": 10, "assessment": 10, "synthetic_thermometry": 10,
    "demo": 11,
}


def _files(name: str) -> list[Path]:
    package = SOURCE / name
    return sorted(package.glob("*.py")) if package.is_dir() else [SOURCE / f"{name}.py"]


def _imported(path: Path) -> set[str]:
    """fusplan modules imported by ``path``, outside ``if TYPE_CHECKING:`` blocks.

    Relative imports are resolved from the file's own package, so ``from ..acoustics``
    in ``protocol/validate.py`` counts as ``acoustics``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree)
               if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for child in block.body for node in ast.walk(child)}
    package = path.parent.relative_to(SOURCE).parts  # () for a top-level module
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
                full = base + (module.split(".") if module else [])
            elif module.startswith("fusplan"):
                full = module.split(".")[1:]
            else:
                continue
            names |= {full[0]} if full else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fusplan.")}
    return names & set(LAYERS)


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_module_imports_only_lower_layers(module):
    for path in _files(module):
        higher = {name for name in _imported(path) if name != module and LAYERS[name] >= LAYERS[module]}
        assert not higher, f"{path.name} (layer {LAYERS[module]}) imports {sorted(higher)}"


def test_every_core_module_has_a_layer():
    """A new module must take its place in the pipeline (front ends sit above every layer)."""
    front_ends = {"cli", "batch", "__init__", "__main__", "protocols", "_bundled"}
    modules = {p.stem for p in SOURCE.glob("*.py")} | {p.name for p in SOURCE.iterdir()
                                                         if p.is_dir() and (p / "__init__.py").exists()}
    assert modules - front_ends - set(LAYERS) == set()
