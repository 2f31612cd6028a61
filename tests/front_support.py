"""Shared pieces of the front-end tests (command line, batch, demo), imported by tests/test_cli_*.py."""
from __future__ import annotations

#: A small, fast protocol: Gaussian source, 16 mm box at 1 mm, two stages.
QUICK_PROTOCOL = {
    "name": "front-end quick gaussian",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [2.0, 2.0, 4.0]},
    "grid": {"spacing_mm": 1.0, "extent_mm": 16},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 4, "cooling_s": 6},
        {"stage": "treatment", "peak_c": 56, "duration_s": 6, "cooling_s": 6},
    ],
    "thresholds_cem43": [17, 240],
}


def no_registration(*args, **kwargs):
    """Stands in for ``fusplan.targeting.register`` where a command must not register."""
    raise AssertionError("registered although a cheap check should have failed first")


def no_simulation(*args, **kwargs):
    """Stands in for ``fusplan.planner.simulate`` where a command must not simulate."""
    raise AssertionError("simulated although a cheap check should have failed first")
