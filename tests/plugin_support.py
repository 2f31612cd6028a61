"""Shared pieces of the napari plugin tests (imported by tests/test_plugin_*.py)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
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
    """Wait until the widget's workers are done (the lesion over time drawn too), and fail on any error."""
    qtbot.waitUntil(lambda: not widget.busy and not widget.drawing, timeout=timeout_ms)
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


@dataclass
class MouseEvent:
    """A mouse event as napari's layer callbacks read it (napari's own Points tests build the same)."""

    type: str
    position: tuple  # world coordinates, every viewer axis
    dims_displayed: list
    is_dragging: bool = False
    modifiers: list = field(default_factory=list)
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    view_direction: list | None = None
    up_direction: list | None = None


def drag_point(viewer, layer, start_mm, positions_mm, on_move=None) -> None:
    """Drag the point of ``layer`` at ``start_mm`` (RAS) through ``positions_mm`` in the 2D view, as a mouse does.

    Press, one move per position (``on_move(index)`` after each), release: napari's own
    mouse-callback machinery runs (the select mode's and any the plugin added).
    """
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    offset = viewer.dims.ndim - layer.ndim
    displayed = [axis - offset for axis in viewer.dims.displayed]

    def event(kind, where_mm):
        position = (*viewer.dims.point[:offset], *np.asarray(where_mm, dtype=float))
        return ReadOnlyWrapper(MouseEvent(kind, position, displayed, is_dragging=kind == "mouse_move"),
                               exceptions=("handled",))

    mouse_press_callbacks(layer, event("mouse_press", start_mm))
    for index, where in enumerate(positions_mm):
        mouse_move_callbacks(layer, event("mouse_move", where))
        if on_move is not None:
            on_move(index)
    mouse_release_callbacks(layer, event("mouse_release", positions_mm[-1]))
