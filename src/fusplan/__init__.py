"""fusplan: an MR-guided focused ultrasound thalamotomy planner.

The public API (see the README and ``docs``)::

    scan = fusplan.load_scan(path)
    found = fusplan.locate_targets(scan, atlas="morel", sides=("left", "right"))
    protocol = fusplan.load_protocol(path_or_mapping)
    result = fusplan.simulate(protocol, scan=None, targets=None)
    dose = fusplan.cem43(temperature_c, dt_s)

The result types are exported too: ``Scan``, ``Grid``, ``TargetingResult`` (with
``Target`` and ``AcpcFrame``), ``Protocol`` (with ``Sonication``),
``SimulationResult`` (with ``SideResult``, ``SonicationRecord`` and
``LesionRecord``); each has ``to_dict()`` where it has a JSON form.

Front ends (the command line, the batch runner, the demo, the napari plugin) prepare a
subject with ``fusplan.prepare_subject(scan, fusplan.TargetRequest(...), fusplan.CtRequest(ct))``
(:mod:`fusplan.subject`) and name sides, stages, atlases and presets with the words of
:mod:`fusplan.vocabulary` (``SIDES`` is ``("left", "right")``; ``parse_sides`` reads
``"both"``, ``"Left"``, ``"left;right"``).

Names are imported on first use, so ``import fusplan`` stays light. The napari plugin
imports nothing else from fusplan but :mod:`fusplan.formatting` (``tests/test_layers.py``).
"""
import importlib

from ._version import __version__

_PUBLIC = {
    "load_scan": "io",
    "Scan": "io",
    "FusplanInputError": "errors",
    "Grid": "grid",
    "load_atlas": "atlas",
    "locate_targets": "targeting",
    "Target": "targeting",
    "TargetingResult": "targeting",
    "AcpcFrame": "targeting",
    "check_target": "targeting",
    "prepare_subject": "subject",
    "TargetRequest": "subject",
    "CtRequest": "subject",
    "Subject": "subject",
    "SIDES": "vocabulary",
    "SIDE_CHOICES": "vocabulary",
    "STAGES": "vocabulary",
    "SKULL_SOURCES": "vocabulary",
    "ATLASES": "vocabulary",
    "DEFAULT_ATLAS": "vocabulary",
    "DEFAULT_SIDE": "vocabulary",
    "DEFAULT_TARGET": "vocabulary",
    "REGISTRATION_PRESETS": "vocabulary",
    "parse_sides": "vocabulary",
    "sample_scan_path": "atlas",
    "default_protocol_path": "protocol",
    "BUNDLED_PROTOCOLS": "protocol",
    "POWER_KEYS": "protocol",
    "write_report": "report",
    "dumps_json": "report",
    "ExecutionOptions": "execution",
    "load_protocol": "protocol",
    "Protocol": "protocol",
    "Sonication": "protocol",
    "SimulationResult": "planner",
    "SideResult": "planner",
    "SonicationRecord": "planner",
    "LesionRecord": "lesion",
    "measure_lesion": "lesion",
    "cem43": "dose",
    "load_measurements": "measured",
    "calibrate": "calibration",
    "predict_treatment": "prediction",
    "uncertainty_band": "uncertainty",
    "assess": "assessment",
    # what the napari plugin uses beyond the above
    "CLP_TARGET": "vocabulary",
    "DEFAULT_REGISTRATION_PRESET": "vocabulary",
    "Timeline": "timeline",
    "animation_times": "figures",
    "band_text": "clinical_summary",
    "cem43_step": "dose",
    "corners_world_mm": "spatial",
    "ct_registration_beside": "subject",
    "focus_figure": "figures",
    "regions_from_report": "results",
    "resample": "spatial",
    "resample_to_grid": "skull",
    "scan_from_array": "io",
    "skull_blocks": "skull.outputs",
    "stage_steps": "teaching",
    "threshold_styles": "thresholds",
}

__all__ = sorted([*_PUBLIC, "simulate"]) + ["__version__"]


def simulate(protocol, scan=None, targets=None, **options):
    """Simulate ``protocol`` in the phantom, or on ``scan`` at its targets.

    The convenience behind the documented ``fusplan.simulate(protocol, scan=None,
    targets=None)``: a scan given without targets gets them located first with
    :func:`fusplan.targeting.locate_targets` (defaults: Morel atlas, CLp, both
    sides); then :func:`fusplan.planner.simulate` runs with ``options``
    (``sides``, ``progress``).

    Returns
    -------
    fusplan.SimulationResult
    """
    from .planner import simulate as simulate_at_targets

    if scan is not None and targets is None:
        from .targeting import locate_targets

        targets = locate_targets(scan)
    return simulate_at_targets(protocol, scan=scan, targets=targets, **options)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'fusplan' has no attribute {name!r}")


def __dir__():
    return __all__
