"""Shared pieces of the napari plugin tests (imported by tests/test_plugin_*.py)."""

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


def wait_idle(qtbot, widget, timeout_ms: int) -> None:
    """Wait until the widget's worker is done, and fail on any error it reported."""
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout_ms)
    assert widget.last_error is None, widget.last_error
