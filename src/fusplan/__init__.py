"""fusplan: an MR-guided focused ultrasound thalamotomy planner.

The public API (see the README and ``docs``)::

    scan = fusplan.load_scan(path)
    found = fusplan.locate_targets(scan, atlas="morel", sides=("left", "right"))
    protocol = fusplan.load_protocol(path_or_mapping)
    result = fusplan.simulate(protocol, scan=None, targets=None)
    dose = fusplan.cem43(temperature_c, dt_s)

Names are imported on first use, so ``import fusplan`` stays light.
"""
import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "load_scan": "io",
    "Scan": "io",
    "FusplanInputError": "errors",
    "Grid": "grid",
    "load_atlas": "atlas",
    "locate_targets": "targeting",
    "load_protocol": "protocol",
    "simulate": "planner",
    "cem43": "dose",
    "load_measurements": "measured",
    "calibrate": "calibration",
    "predict_treatment": "calibration",
    "uncertainty_band": "uncertainty",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'fusplan' has no attribute {name!r}")


def __dir__():
    return __all__
