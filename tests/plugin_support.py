"""Shared pieces of the napari plugin tests (imported by tests/test_plugin_*.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

def readme_images_script():
    """``scripts/make_readme_images.py`` as a module (the README screenshots and these tests share it)."""
    spec = importlib.util.spec_from_file_location(
        "make_readme_images", Path(__file__).resolve().parents[1] / "scripts" / "make_readme_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The small, fast three-stage protocol of the README screenshots (Gaussian source, 16 mm box).
FAST_PROTOCOL = readme_images_script().FAST_PROTOCOL

WIDGET_NAME = "Thalamotomy planner"


def wait_idle(qtbot, widget, timeout_ms: int = 240_000) -> None:
    """Wait until the widget's worker is done, and fail on any error it reported."""
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout_ms)
    assert widget.last_error is None, widget.last_error


def run(qtbot, widget, action, timeout_ms: int = 240_000) -> None:
    """Start ``action`` (Locate, Simulate, Export) and wait for it."""
    action()
    wait_idle(qtbot, widget, timeout_ms)


def dock_planner(viewer):
    """The planner as napari users open it: Plugins menu -> add_plugin_dock_widget (a proxy viewer)."""
    _, widget = viewer.window.add_plugin_dock_widget("fusplan", WIDGET_NAME)
    return widget


def identity_registration(folder: Path, atlas: str = "morel") -> Path:
    """A saved identity registration: the Colin27 sample lives in MNI space (no warp needed)."""
    from fusplan.registration import Registration

    empty = np.zeros((0, 0, 0, 3), dtype=np.float32)
    registration = Registration(
        atlas=atlas, affine_mm=np.eye(4), field_shape=(0, 0, 0), field_affine=np.eye(4), forward_mm=empty,
        backward_mm=empty, method="identity (sample already in MNI space)", time_s=0.0, similarity=1.0,
        affine_similarity=1.0, contrast="T1")
    return registration.save(Path(folder) / f"identity_{atlas}.npz")
