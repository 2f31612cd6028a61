"""Shared pieces of the napari plugin tests (imported by tests/test_plugin_*.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: A small, fast protocol: Gaussian source, 16 mm box at 0.5 mm, the three stages.
FAST_PROTOCOL = {
    "name": "Gaussian-source three-stage demo",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [2.5, 2.5, 5.0]},
    "grid": {"spacing_mm": 0.5, "extent_mm": 16},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 5, "cooling_s": 10},
        {"stage": "verification", "peak_c": 49, "duration_s": 6, "cooling_s": 15},
        {"stage": "treatment", "peak_c": 58, "duration_s": 12, "cooling_s": 20},
    ],
    "thresholds_cem43": [17, 240],
}

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
