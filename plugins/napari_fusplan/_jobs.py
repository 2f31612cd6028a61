"""Qt-free jobs the widget runs in a worker: each is ``job(progress) -> value``.

``progress(fraction, message)`` is the library's callback; raising inside it (the
runner does, on cancel) stops the job at its next report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Share of the Simulate progress bar for the library call; the rest prepares the layers, skull and plot.
SIMULATION_SHARE = 0.9


def locate(layer, options: dict, name: str, ct_path: str | None = None):
    """Read the scan of ``layer`` and prepare the subject (:func:`fusplan.subject.prepare_subject`:
    ``options`` are :class:`~fusplan.subject.TargetRequest` fields, ``settings`` its preset), reslice if
    oblique. With ``ct_path`` the CT is checked first (it loads as a head CT in HU) and registered to the
    scan after the targets, reusing the CT registration saved beside a given registration file.
    Returns ``(scan, found, reslice, skull_ct)``."""
    def job(progress):
        from fusplan import ExecutionOptions
        from fusplan import CtRequest, TargetRequest, ct_registration_beside, prepare_subject

        from ._layers import resliced_scan_layer, scan_from_layer

        fields = dict(options)
        execution = ExecutionOptions(progress=progress, registration_preset=fields.pop("settings"))
        request = TargetRequest(**fields)
        ct = None if ct_path is None else CtRequest(ct_path, reuse=ct_registration_beside(request.registration))
        subject = prepare_subject(scan_from_layer(layer), request, ct, execution)
        return subject.scan, subject.targets, resliced_scan_layer(subject.scan, name), subject.skull_ct

    return job


@dataclass
class SimulationDisplay:
    """A simulation and everything drawn of it, prepared off the GUI thread.

    ``movies``: :func:`._movie.simulation_layers`; ``skull``: :func:`._skull.skull_layers`;
    ``figures``: :func:`._plot.focus_panels` (one per side).
    """

    result: Any
    document: dict
    movies: list
    skull: list
    figures: list


def simulate(protocol, scan, found, timings_s: dict, measurements=None, uncertainty_samples: int = 0,
             skull_ct=None):
    """:func:`fusplan.simulate` (calibrated on ``measurements`` and with the band when asked), then its display.

    ``measurements`` is an already validated :class:`fusplan.measured.Measurements`;
    ``skull_ct`` a CT already in the subject's space; wall times go to ``timings_s``.
    Returns a :class:`SimulationDisplay`.
    """
    def job(progress):
        from fusplan import simulate as run
        from fusplan import assess

        from ._movie import simulation_layers
        from ._plot import focus_panels
        from ._skull import skull_layers

        start_s = time.perf_counter()
        result = run(protocol, scan=scan, targets=found, skull_ct=skull_ct,
                     progress=lambda f, m="": progress(SIMULATION_SHARE * f, m))
        if measurements is not None or uncertainty_samples:
            assess(result, measurements, uncertainty_samples=uncertainty_samples,
                   progress=lambda f, m="": progress(SIMULATION_SHARE, m))
        timings_s["library_s"] = time.perf_counter() - start_s
        progress(SIMULATION_SHARE, "layers, skull and focus plot")
        document = result.to_dict()
        movies = simulation_layers(result)
        display = SimulationDisplay(result, document, movies, skull_layers(result),
                                    focus_panels(document, [movie["side"] for movie in movies]))
        timings_s["plugin_job_s"] = time.perf_counter() - start_s
        return display

    return job


def lesion_over_time(movies: list, timings_s: dict):
    """:func:`._movie.lesion_layers` of a :class:`SimulationDisplay`'s movies (role -> layer data).

    Run while the rest of the simulation is being drawn: it is the slow part of the display.
    """
    def job(progress):
        from ._movie import lesion_layers

        start_s = time.perf_counter()
        layers = lesion_layers(movies, progress)
        timings_s["lesion_s"] = time.perf_counter() - start_s
        return layers

    return job


def export(result, directory: Path, scan):
    """:func:`fusplan.report.write_report` of ``result`` into ``directory``."""
    def job(progress):
        from fusplan import write_report

        progress(0.0, f"writing {directory}")
        return write_report(result, directory, scan=scan)

    return job
