"""The pipeline runs one way: no module imports a module of a higher (or its own) layer.

Reads the import statements (also the ones inside functions and under ``if
TYPE_CHECKING:``) of every module of ``src/fusplan`` and of the napari plugin. An
annotation-only import counts too: a module that holds an object of a higher layer
ends up calling it at run time (an upward call), so it must name an interface of its
own layer instead. Imports of the package root (``from fusplan import simulate``,
``from . import x``) count as imports of ``__init__``.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "fusplan"
PLUGIN = ROOT / "plugins" / "napari_fusplan"

#: Layer of every module: a module may import only from lower layers.
LAYERS = {
    "_version": 0, "errors": 0, "progress": 0, "threads": 0, "dose": 0, "grid": 0, "thermometry": 0,
    "formatting": 0, "thresholds": 0, "spatial": 0,
    "vocabulary": 1, "textfile": 1, "tissue": 1, "acpc": 1, "timeline": 1,
    "execution": 2,
    "nifti_check": 2, "outputs": 2, "registration_file": 2,
    "io": 3,
    "atlas": 4, "acoustics": 4, "bioheat": 4, "figures": 4, "lesion": 4,
    "template": 5, "protocol": 5, "clinical": 5,
    "registration": 6, "driver": 6,
    "targeting": 7, "samples": 7, "skull": 7, "focusmodel": 7,
    "results": 8, "measured": 8, "clinical_summary": 8, "subject": 8, "spot": 8,
    "planner": 9, "qc": 9, "calibration": 9, "prediction": 9.5, "uncertainty": 9, "teaching": 9,
    "report": 10, "assessment": 10, "synthetic_thermometry": 10,
    "demo": 11,
    # The front door and the front ends: the package root offers the core's public API; the
    # batch runner, the command line and the plugin use it; cli and the plugin never import each other.
    "__init__": 12,
    "batch": 13,
    "cli": 14, "napari_fusplan": 14,
    "__main__": 15,
}
#: Package data folders (no Python modules of their own).
DATA_PACKAGES = {"protocols", "_bundled"}


def _files(name: str) -> list[Path]:
    if name == "napari_fusplan":
        return sorted(PLUGIN.glob("*.py"))
    package = SOURCE / name
    return sorted(package.glob("*.py")) if package.is_dir() else [SOURCE / f"{name}.py"]


def _module_of(full: list[str], names: list[str]) -> set[str]:
    """The layered module a ``from <full> import <names>`` statement imports (``full`` below fusplan)."""
    if full:
        return {full[0]}
    return {name if name in LAYERS and name != "__init__" else "__init__" for name in names}


def _imported(path: Path) -> set[str]:
    """Layered modules imported by ``path`` (every import statement, wherever it is).

    Relative imports are resolved from the file's own package, so ``from ..acoustics``
    in ``protocol/validate.py`` counts as ``acoustics``; in the plugin, ``fusplan.x``
    counts as ``x`` and ``from fusplan import y`` as the package root.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_plugin = path.parent == PLUGIN
    package = () if in_plugin else path.parent.relative_to(SOURCE).parts  # () for a top-level module
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and in_plugin:
                continue  # the plugin's own modules
            if node.level:
                full = list(package[: len(package) - (node.level - 1)]) + (module.split(".") if module else [])
            elif module == "fusplan" or module.startswith("fusplan."):
                full = module.split(".")[1:]
            elif module == "napari_fusplan" or module.startswith("napari_fusplan."):
                full = ["napari_fusplan"]
            else:
                continue
            found |= _module_of(full, [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fusplan":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
                elif parts[0] == "napari_fusplan":
                    found.add("napari_fusplan")
    unknown = found - set(LAYERS)
    assert not unknown, f"{path}: imports {sorted(unknown)}, which has no layer"
    return found


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_module_imports_only_lower_layers(module):
    for path in _files(module):
        higher = {name for name in _imported(path) if name != module and LAYERS[name] >= LAYERS[module]}
        assert not higher, f"{path.name} (layer {LAYERS[module]}) imports {sorted(higher)}"


def test_every_module_has_a_layer():
    """A new module must take its place in the pipeline."""
    modules = {p.stem for p in SOURCE.glob("*.py")} | {p.name for p in SOURCE.iterdir()
                                                         if p.is_dir() and (p / "__init__.py").exists()}
    assert modules - DATA_PACKAGES - set(LAYERS) == set()


def test_the_checker_sees_every_kind_of_import(tmp_path, monkeypatch):
    """Imports of the package root, annotation-only imports and the plugin's imports are all seen."""
    core = SOURCE / "results.py"
    text = ("from typing import TYPE_CHECKING\nfrom . import __version__, timeline\n"
            "if TYPE_CHECKING:\n    from .assessment import Assessment\n"
            "def f():\n    import fusplan.cli\n")
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: text if self == core else "")
    assert _imported(core) == {"__init__", "timeline", "assessment", "cli"}
    plugin_text = "from fusplan import simulate\nfrom fusplan.batch.tasks import x\nfrom ._jobs import y\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: plugin_text)
    assert _imported(PLUGIN / "_widget.py") == {"__init__", "batch"}


#: The one module the plugin may import by name besides the package root: fusplan's number formatter.
PUBLIC_MODULES = {"formatting"}


def test_the_plugin_uses_the_public_api_only():
    import fusplan

    outside = []
    for path in sorted(PLUGIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fusplan":
                module = node.module.split(".")[1:]
                if module and module[0] in PUBLIC_MODULES:
                    continue
                names = [alias.name for alias in node.names]
                if module or not set(names) <= set(fusplan.__all__) | PUBLIC_MODULES:
                    outside.append(f"{path.name}:{node.lineno} from {node.module} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                outside += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                            if a.name.startswith("fusplan.")]
    assert not outside, "the plugin imports past fusplan's public API: " + "; ".join(outside)
    for name in fusplan.__all__:  # every public name resolves
        assert getattr(fusplan, name) is not None
