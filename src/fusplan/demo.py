"""The teaching demo: a staged CLT procedure planned on the bundled sample head.

:func:`run_demo` locates the posterior central lateral nucleus (CLp) on one side of
the bundled Colin27 head, simulates the bundled staged protocol (alignment,
verification, treatment) and writes, besides the plan itself
(:func:`fusplan.report.write_report`):

- ``focus.png``: the temperature of the focus against time, stages shaded, peaks
  annotated, the thermal dose accumulated at the focus on a log axis;
- ``stages.png``: isotherms and the 17 / 240 CEM43 contours over the MRI on
  axial, coronal and sagittal planes through the target at the peak of each stage;
- ``procedure.gif``: the temperature field through the whole procedure, with a
  clock and the stage;
- ``demo.md``: what each stage is for, with this run's numbers
  (:func:`fusplan.teaching.demo_markdown`);
- ``registration.npz``: the atlas registration, reused when the demo is run again
  on the same scan and folder.

The prose lives in :mod:`fusplan.teaching`, the command line in :mod:`fusplan.cli.demo`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import FusplanInputError
from .io import atomic_output
from .progress import ProgressCallback, within
from .targeting import SIDES
from .teaching import demo_markdown

#: Side planned by the demo (CLT is bilateral; one side keeps the demo short).
DEMO_SIDE = "left"
#: Half the side of the field of view of the stage figure and of the animation, mm.
STAGES_HALF_WIDTH_MM = 8.0
ANIMATION_HALF_WIDTH_MM = 12.0
#: Frames of the animation.
ANIMATION_FRAMES = 90
#: Samples of the demo's uncertainty band (100: 12 protocol runs, a few seconds on 2 cores).
DEMO_UNCERTAINTY_SAMPLES = 100
#: Registration cached in the output folder, so running the demo again is quick.
REGISTRATION_NAME = "registration.npz"
#: Share of the progress bar of each step: targeting, simulation, uncertainty, figures.
_SPANS = {"targeting": (0.0, 0.45), "simulation": (0.45, 0.65), "uncertainty": (0.65, 0.75),
          "figures": (0.75, 1.0)}



def run_demo(
    out_dir: str | os.PathLike,
    *,
    scan_path: str | os.PathLike | None = None,
    protocol=None,
    progress: ProgressCallback | None = None,
    side: str = DEMO_SIDE,
    animation_frames: int = ANIMATION_FRAMES,
    registration=None,
    registration_settings: str = "standard",
    uncertainty_samples: int = DEMO_UNCERTAINTY_SAMPLES,
) -> dict[str, Path]:
    """Plan the staged procedure on a scan and write the teaching figures and notes.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created; files in it are replaced atomically).
    scan_path : path-like, optional
        Head scan; default the bundled sample (``fusplan.atlas.sample_scan_path("ch2")``).
    protocol : path, bundled name, mapping or Protocol, optional
        Default the bundled staged CLT protocol.
    progress : callable(fraction, message), optional
    side : {"left", "right"}
        Side to plan.
    animation_frames : int
        Number of frames of the GIF (about 60-120 keeps it small and smooth).
    registration : Registration or path, optional
        A saved registration of this scan to reuse (default: the one cached in
        ``out_dir``, else register).
    registration_settings : {"standard", "fast", "affine"}
        Registration preset (:data:`fusplan.registration.SETTINGS`) when registering;
        ``"affine"`` is quickest and least accurate.
    uncertainty_samples : int
        Samples of the day-1 T1 lesion's uncertainty band (:func:`fusplan.assessment.assess`;
        0: none).

    Returns
    -------
    dict
        File name -> path of every file written.
    """
    from .assessment import assess
    from .atlas import sample_scan_path
    from .io import load_scan
    from .planner import simulate
    from .protocol import default_protocol_path, load_protocol
    from .registration import load_registration
    from .report import write_report

    report_progress = progress or (lambda fraction, message: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FusplanInputError(f"{out}: exists and is not a directory")
    if side not in SIDES:
        raise FusplanInputError(f"side must be left or right (got {side!r})")
    if not 2 <= int(animation_frames) <= 400:
        raise FusplanInputError(f"animation_frames must be between 2 and 400 (got {animation_frames})")
    timings: dict[str, float] = {}
    start = time.perf_counter()

    protocol = load_protocol(protocol if protocol is not None else default_protocol_path("clt"))
    if registration is not None and not hasattr(registration, "save"):
        registration = load_registration(registration)
    scan = load_scan(scan_path if scan_path is not None else sample_scan_path("ch2"))
    cache = out / (REGISTRATION_NAME if registration_settings == "standard"
                   else f"registration-{registration_settings}.npz")
    tick = time.perf_counter()
    found = locate_demo_target(scan, side, cache, registration_settings, _within(report_progress, "targeting"),
                               registration=registration)
    timings["targeting_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    result = simulate(protocol, scan=scan, targets=found, progress=_within(report_progress, "simulation"))
    timings["simulation_s"] = time.perf_counter() - tick
    if uncertainty_samples:
        tick = time.perf_counter()
        assess(result, uncertainty_samples=uncertainty_samples, progress=_within(report_progress, "uncertainty"))
        timings["uncertainty_s"] = time.perf_counter() - tick

    figures_progress = _within(report_progress, "figures")
    figures_progress(0.0, "writing the plan")
    written = dict(write_report(result, out, scan=scan))
    tick = time.perf_counter()
    figures = write_teaching_figures(result, out, scan=scan, side=side, animation_frames=animation_frames,
                                     progress=figures_progress)
    snapshots = figures.pop("snapshots")
    written.update(figures)
    timings["figures_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - start

    path = out / "demo.md"
    with atomic_output(path) as tmp:
        Path(tmp).write_text(demo_markdown(result.to_dict(), snapshots, timings, side), encoding="utf-8")
    written["demo.md"] = path
    if cache.is_file():
        written[cache.name] = cache
    report_progress(1.0, f"done in {timings['total_s']:.0f} s: {out}")
    return written


def _within(progress: ProgressCallback, step: str) -> ProgressCallback:
    """``progress`` rescaled to the share of ``step`` in the whole demo."""
    return within(progress, *_SPANS[step])


def locate_demo_target(scan, side: str, cache: Path, settings: str, progress: ProgressCallback,
                       registration=None):
    """Locate CLp on ``side``, reusing ``registration`` or the one cached at ``cache`` when it fits the scan.

    A fresh registration is saved to ``cache`` (atomically).
    """
    from .registration import load_registration
    from .targeting import locate_targets

    source = "given"
    if registration is None and cache.is_file():
        try:
            registration, source = load_registration(cache), "cached"
        except FusplanInputError:
            registration = None
        if registration is not None and not registration.matches(scan):
            registration = None
    if registration is None:
        progress(0.0, f"registering the atlas to {scan.path.name if scan.path else 'the scan'}")
    else:
        progress(0.0, f"reusing the {source} registration" + (f" in {cache}" if source == "cached" else ""))
    found = locate_targets(scan, atlas="morel", sides=(side,), target="CLp", registration=registration,
                           settings=settings, progress=progress)
    if registration is None:
        found.registration.save(cache)
    return found


def write_teaching_figures(
    result,
    out_dir: str | os.PathLike,
    *,
    scan=None,
    side: str | None = None,
    animation_frames: int = ANIMATION_FRAMES,
    progress: ProgressCallback | None = None,
) -> dict:
    """Write ``focus.png``, ``stages.png`` and ``procedure.gif`` for a simulation result.

    Parameters
    ----------
    result : fusplan.planner.SimulationResult
        A scan plan or a phantom run.
    out_dir : path-like
    scan : fusplan.io.Scan, optional
        MRI drawn under the fields (resampled on planes through the target).
    side : str, optional
        Side of a scan plan (default its first side; ``None`` in the phantom).
    animation_frames : int
    progress : callable(fraction, message), optional

    Returns
    -------
    dict
        File name -> path, plus ``"snapshots"``: the stage snapshots drawn in
        ``stages.png`` (see :func:`stage_snapshots`).
    """
    report_progress = progress or (lambda fraction, message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if side is None:
        side = next(iter(result.sides))
    report = result.to_dict()
    grid = result.sides[side].grid
    background = _background(scan, grid) if scan is not None else None
    report_progress(0.05, "drawing the focus curve")
    written = _focus(report, out, side)
    report_progress(0.15, "drawing the stages")
    snapshots = stage_snapshots(result, report, side)
    written.update(_stages(snapshots, grid, result.protocol, background, out, side))
    report_progress(0.5, f"rendering the animation ({animation_frames} frames)")
    written.update(_animation(result, report, grid, background, side, animation_frames, out))
    report_progress(1.0, "figures written")
    written["snapshots"] = snapshots
    return written


def stage_snapshots(result, report, side: str | None) -> list[dict]:
    """The field at the hottest moment of each stage, with the dose accumulated so far.

    The dose "so far" is that accumulated by the end of the stage's hottest
    sonication and its cooling (:func:`dose_after`), so the 17 and 240 CEM43
    contours show what each stage has done.
    """
    from .figures import stage_peaks

    peaks = stage_peaks(report, side)
    fields = result.temperature_at([p["time_s"] for p in peaks], side=side)
    return [{
        "label": f"{peak['stage']} (sonication {peak['sonication']})\n"
                 f"t = {peak['time_s']:.0f} s, peak {peak['temperature_c']:.1f} °C",
        "stage": peak["stage"],
        "sonication": peak["sonication"],
        "time_s": peak["time_s"],
        "peak_c": peak["temperature_c"],
        "temperature_c": np.asarray(field_c),
        "dose_cem43": dose_after(result, side, peak["sonication"]),
    } for peak, field_c in zip(peaks, fields)]


def dose_after(result, side: str | None, last_index: int) -> np.ndarray:
    """CEM43 accumulated by the end of sonication ``last_index`` (1-based, its cooling included).

    Simulates the result's protocol truncated after that sonication, with every
    power fixed to the value the full simulation titrated (so the history up to
    there is the same), on the result's own scan and targets.
    """
    from .planner import simulate

    side_result = result.sides[side]
    protocol = result.protocol
    if last_index >= len(protocol.sonications):
        return np.asarray(side_result.dose_cem43)
    key = "power_w" if protocol.transducer.kind.radiates else "absorbed_power_w"
    fixed = tuple(
        replace(sonication, **{"power_w": None, "absorbed_power_w": None, "peak_c": None, key: float(getattr(record, key))})
        for sonication, record in zip(protocol.sonications[:last_index], side_result.sonications))
    spec = {**protocol.spec, "sonications": [
        {k: v for k, v in vars(s).items() if k != "index" and v is not None} for s in fixed]}
    truncated = replace(protocol, sonications=fixed, spec_json=json.dumps(spec, sort_keys=True))
    run = simulate(truncated, scan=result.scan, targets=result.targets, sides=None if side is None else (side,))
    return np.asarray(run.sides[side].dose_cem43)


# ---------------------------------------------------------------------------- figures


def _where(report, side: str | None) -> str:
    if side is None:
        return "phantom"
    target = next((t for t in report.get("targets", []) if t.get("side") == side), {})
    return f"{side} {target.get('name', 'target')}"


def _focus(report, out: Path, side: str | None) -> dict[str, Path]:
    from .figures import focus_figure

    path = out / "focus.png"
    figure = focus_figure(report, side=side, title=f"{report.get('protocol', '')}: temperature and thermal dose "
                                                   f"at the focus ({_where(report, side)})")
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    return {path.name: path}


def _background(scan, grid) -> dict[str, np.ndarray]:
    from .figures import scan_planes

    return scan_planes(scan.data, scan.affine, grid, ANIMATION_HALF_WIDTH_MM)


def _stages(snapshots, grid, protocol, background, out: Path, side: str | None) -> dict[str, Path]:
    from .figures import stage_slices_figure

    path = out / "stages.png"
    frame = "planes through the target, AC-PC aligned" if side is not None else "planes through the focus"
    figure = stage_slices_figure(
        snapshots, grid, protocol.thresholds_cem43, background=background, half_width_mm=STAGES_HALF_WIDTH_MM,
        title=f"{protocol.name}: isotherms and dose contours at the peak of each stage\n({frame})")
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    return {path.name: path}


def _animation(result, report, grid, background, side: str, n_frames: int, out: Path) -> dict[str, Path]:
    from .figures import animation_times, field_planes, write_animation

    times = animation_times(report, n_frames, side)
    planes = []
    for chunk in np.array_split(times, max(1, len(times) // 10)):
        for field_c in result.temperature_at(chunk, side=side):
            planes.append(field_planes(field_c, grid, ANIMATION_HALF_WIDTH_MM))
    path = out / "procedure.gif"
    write_animation(path, report, grid, times, planes, background=background, side=side,
                    half_width_mm=ANIMATION_HALF_WIDTH_MM)
    return {path.name: path}
