"""Shared pieces of the front-end tests (command line, batch, demo), imported by tests/test_cli_*.py."""
from __future__ import annotations

#: A small, fast protocol: Gaussian source, 20 mm box at 1 mm (21^3 voxels), the three stages.
QUICK_PROTOCOL = {
    "name": "quick staged gaussian",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [2.0, 2.0, 4.0]},
    "grid": {"spacing_mm": 1.0, "extent_mm": 20},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 5, "cooling_s": 10},
        {"stage": "verification", "peak_c": 49, "duration_s": 6, "cooling_s": 10},
        {"stage": "treatment", "peak_c": 57, "duration_s": 10, "cooling_s": 10},
    ],
    "thresholds_cem43": [17, 240],
}


def no_registration(*args, **kwargs):
    """Stands in for ``fusplan.targeting.register`` where a command must not register."""
    raise AssertionError("registered although a cheap check should have failed first")


def no_simulation(*args, **kwargs):
    """Stands in for ``fusplan.planner.simulate`` where a command must not simulate."""
    raise AssertionError("simulated although a cheap check should have failed first")
