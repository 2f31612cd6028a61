"""The teaching demo: a staged CLT procedure planned on the bundled sample head.

:func:`run_demo` locates the posterior central lateral nucleus (CLp) on one side of
the bundled Colin27 head, simulates the bundled staged protocol (alignment,
verification, treatment) and writes, besides the plan itself
(:func:`fusplan.report.write_report`):

- ``focus.png``: the temperature of the focus against time, stages shaded, peaks
  annotated (top panel), the thermal dose accumulated at the focus on a log axis
  (bottom panel);
- ``stages.png``: isotherms and the protocol's dose contours over the MRI on
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

import os
import time
from pathlib import Path

import numpy as np

from .errors import FusplanInputError
from .io import atomic_output
from .progress import ProgressCallback, within
from .teaching import demo_markdown
from .vocabulary import DEFAULT_REGISTRATION_PRESET, DEFAULT_SIDE, REGISTRATION_FILE, SIDES

#: Side planned by the demo (CLT is bilateral; one side keeps the demo short).
DEMO_SIDE = DEFAULT_SIDE
#: Half the side of the field of view of the stage figure and of the animation, mm.
STAGES_HALF_WIDTH_MM = 6.0
ANIMATION_HALF_WIDTH_MM = 12.0
#: Frames of the animation.
ANIMATION_FRAMES = 90
#: Samples of the demo's uncertainty band (100: 12 protocol runs, a few seconds on 2 cores).
DEMO_UNCERTAINTY_SAMPLES = 100
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
    registration_settings: str = DEFAULT_REGISTRATION_PRESET,
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
    cache = out / (REGISTRATION_FILE if registration_settings == DEFAULT_REGISTRATION_PRESET
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
        Path(tmp).write_text(demo_markdown(result, side, snapshots, timings), encoding="utf-8")
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
    """Locate CLp on ``side`` (:func:`fusplan.subject.locate`), reusing ``registration`` or the one
    cached at ``cache`` when it fits the scan; a fresh registration is saved to ``cache`` (atomically)."""
    from .execution import ExecutionOptions
    from .subject import TargetRequest, locate

    if registration is not None:
        progress(0.0, "reusing the given registration")
    request = TargetRequest(sides=(side,), registration=registration,
                            registration_cache=cache if registration is None else None)
    return locate(scan, request, ExecutionOptions(progress=progress, registration_preset=settings))


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
    grid = result.sides[side].grid
    background = _background(scan, grid) if scan is not None else None
    report_progress(0.05, "drawing the focus curve")
    written = _focus(result, out, side)
    report_progress(0.15, "drawing the stages")
    snapshots = stage_snapshots(result, side)
    written.update(_stages(snapshots, grid, result.protocol, background, out, side))
    report_progress(0.5, f"rendering the animation ({animation_frames} frames)")
    written.update(_animation(result, grid, background, side, animation_frames, out))
    report_progress(1.0, "figures written")
    written["snapshots"] = snapshots
    return written


def stage_snapshots(result, side: str | None) -> list[dict]:
    """The field at the hottest moment of each stage, with the dose accumulated so far.

    The dose "so far" is that accumulated by the end of the stage's hottest
    sonication and its cooling (:meth:`fusplan.results.SideResult.dose_after`), so
    the dose contours show what each stage has done.
    """
    side_result = result.sides[side]
    peaks = side_result.timeline.stage_peaks()
    fields = side_result.temperature_at([p.time_s for p in peaks])
    return [{
        "label": f"{peak.stage} (sonication {peak.sonication})\n"
                 f"t = {peak.time_s:.0f} s, peak {peak.temperature_c:.1f} °C",
        "stage": peak.stage,
        "sonication": peak.sonication,
        "time_s": peak.time_s,
        "peak_c": peak.temperature_c,
        "temperature_c": np.asarray(field_c),
        "dose_cem43": side_result.dose_after(peak.sonication),
    } for peak, field_c in zip(peaks, fields)]


# ---------------------------------------------------------------------------- figures


def _where(result, side: str | None) -> str:
    if side is None:
        return "phantom"
    target = result.sides[side].target
    return f"{side} {target.name if target is not None else 'target'}"


def _focus(result, out: Path, side: str | None) -> dict[str, Path]:
    from .figures import focus_figure

    path = out / "focus.png"
    figure = focus_figure(result.timeline(side), result.protocol.thresholds_cem43,
                          title=f"{result.protocol.name}: temperature and thermal dose at the focus "
                                f"({_where(result, side)})")
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


def _animation(result, grid, background, side: str, n_frames: int, out: Path) -> dict[str, Path]:
    from .figures import animation_times, field_planes, write_animation

    timeline = result.timeline(side)
    times = animation_times(timeline, n_frames)
    planes = []
    for chunk in np.array_split(times, max(1, len(times) // 10)):
        for field_c in result.temperature_at(chunk, side=side):
            planes.append(field_planes(field_c, grid, ANIMATION_HALF_WIDTH_MM))
    path = out / "procedure.gif"
    write_animation(path, timeline, grid, times, planes, background=background, half_width_mm=ANIMATION_HALF_WIDTH_MM)
    return {path.name: path}
