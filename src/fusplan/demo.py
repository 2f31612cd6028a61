"""The teaching demo: a staged CLT procedure planned on the bundled sample head.

:func:`run_demo` locates the posterior central lateral nucleus (CLp) on the left of
the bundled Colin27 head, simulates the bundled staged protocol (alignment,
verification, treatment) and writes, besides the plan itself
(:func:`fusplan.report.write_report`):

- ``focus.png``: the temperature of the focus against time, stages shaded, peaks
  annotated, the thermal dose accumulated at the focus on a log axis;
- ``stages.png``: isotherms and the 17 / 240 CEM43 contours over the MRI on
  axial, coronal and sagittal planes through the target at the peak of each stage;
- ``procedure.gif``: the temperature field through the whole procedure, with a
  clock and the stage;
- ``demo.md``: what each stage is for, with this run's numbers;
- ``registration.npz``: the atlas registration, reused when the demo is run again
  on the same scan and folder.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .errors import FusplanInputError
from .io import atomic_output

#: Side planned by the demo (CLT is bilateral; one side keeps the demo short).
DEMO_SIDE = "left"
#: Half the side of the field of view of the stage figure and of the animation, mm.
STAGES_HALF_WIDTH_MM = 8.0
ANIMATION_HALF_WIDTH_MM = 12.0
#: Frames of the animation.
ANIMATION_FRAMES = 90
#: Registration cached in the output folder, so running the demo again is quick.
REGISTRATION_NAME = "registration.npz"

ProgressCallback = Callable[[str], None]


def run_demo(
    out_dir: str | os.PathLike,
    *,
    scan_path: str | os.PathLike | None = None,
    protocol=None,
    progress: ProgressCallback | None = None,
    side: str = DEMO_SIDE,
    animation_frames: int = ANIMATION_FRAMES,
    registration_settings: str = "standard",
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
    progress : callable(str), optional
        Receives one line per step (default: nothing).
    side : {"left", "right"}
        Side to plan.
    animation_frames : int
        Number of frames of the GIF (about 60-120 keeps it small and smooth).
    registration_settings : {"standard", "fast", "affine"}
        Registration preset (:data:`fusplan.registration.SETTINGS`); ``"affine"`` is
        quickest and least accurate.

    Returns
    -------
    dict
        File name -> path of every file written.
    """
    from .atlas import sample_scan_path
    from .io import load_scan
    from .planner import simulate
    from .protocol import default_protocol_path, load_protocol
    from .report import write_report

    say = progress or (lambda message: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FusplanInputError(f"{out}: exists and is not a directory")
    if side not in ("left", "right"):
        raise FusplanInputError(f"side must be left or right (got {side!r})")
    if not 2 <= int(animation_frames) <= 400:
        raise FusplanInputError(f"animation_frames must be between 2 and 400 (got {animation_frames})")
    timings: dict[str, float] = {}
    start = time.perf_counter()

    scan = load_scan(scan_path if scan_path is not None else sample_scan_path("ch2"))
    protocol = load_protocol(protocol if protocol is not None else default_protocol_path("clt"))
    tick = time.perf_counter()
    cache = out / (REGISTRATION_NAME if registration_settings == "standard"
                   else f"registration-{registration_settings}.npz")
    found = _locate(scan, side, cache, registration_settings, say)
    timings["targeting_s"] = time.perf_counter() - tick
    say(f"simulating '{protocol.name}' ({len(protocol.sonications)} sonications)")
    tick = time.perf_counter()
    result = simulate(protocol, scan=scan, targets=found)
    timings["simulation_s"] = time.perf_counter() - tick

    say("writing the plan")
    written = dict(write_report(result, out, scan=scan))
    tick = time.perf_counter()
    figures = write_teaching_figures(result, out, scan=scan, side=side, animation_frames=animation_frames,
                                     progress=say)
    snapshots = figures.pop("snapshots")
    written.update(figures)
    timings["figures_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - start

    notes = demo_markdown(result.to_dict(), snapshots, timings, side)
    path = out / "demo.md"
    with atomic_output(path) as tmp:
        Path(tmp).write_text(notes, encoding="utf-8")
    written["demo.md"] = path
    written[cache.name] = cache
    say(f"done in {timings['total_s']:.0f} s: {out}")
    return written


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
    progress : callable(str), optional

    Returns
    -------
    dict
        File name -> path, plus ``"snapshots"``: the stage snapshots drawn in
        ``stages.png`` (see :func:`stage_snapshots`).
    """
    say = progress or (lambda message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if side is None:
        side = next(iter(result.sides))
    report = result.to_dict()
    grid = result.sides[side].grid
    background = _background(scan, grid) if scan is not None else None
    say("drawing the focus curve")
    written = _focus(report, out, side)
    say("drawing the stages")
    snapshots = stage_snapshots(result, report, side)
    written.update(_stages(snapshots, grid, result.protocol, background, out, side))
    say(f"rendering the animation ({animation_frames} frames)")
    written.update(_animation(result, report, grid, background, side, animation_frames, out))
    written["snapshots"] = snapshots
    return written


# ---------------------------------------------------------------------------- steps


def _locate(scan, side: str, cache: Path, settings: str, say: ProgressCallback):
    """Locate CLp, reusing the registration cached in the output folder when it fits the scan."""
    from .registration import load_registration
    from .targeting import locate_targets

    registration = None
    if cache.is_file():
        try:
            registration = load_registration(cache)
        except FusplanInputError:
            registration = None
        if registration is not None and not registration.matches(scan):
            registration = None
    if registration is None:
        say(f"registering the atlas to {scan.path.name if scan.path else 'the scan'} (about 30 s)")
    else:
        say(f"reusing the registration in {cache}")
    found = locate_targets(scan, atlas="morel", sides=(side,), target="CLp", registration=registration,
                           settings=settings)
    if registration is None:
        found.registration.save(cache)  # atomic
    return found



def _where(report: Mapping, side: str | None) -> str:
    if side is None:
        return "phantom"
    target = next((t for t in report.get("targets", []) if t.get("side") == side), {})
    return f"{side} {target.get('name', 'target')}"


def _focus(report: Mapping, out: Path, side: str | None) -> dict[str, Path]:
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


def stage_snapshots(result, report: Mapping, side: str | None) -> list[dict]:
    """The field at the hottest moment of each stage, with the dose accumulated so far.

    The dose "so far" is that accumulated by the end of the stage's hottest
    sonication and its cooling (the planner's dose for the protocol truncated
    there, with the powers it titrated), so the 17 and 240 CEM43 contours show
    what each stage has done.
    """
    from .figures import stage_peaks

    peaks = stage_peaks(report, side)
    fields = result.temperature_at([p["time_s"] for p in peaks], side=side)
    snapshots = []
    for peak, field_c in zip(peaks, fields):
        dose = dose_after(result, report, side, peak["sonication"])
        snapshots.append({
            "label": f"{peak['stage']} (sonication {peak['sonication']})\n"
                     f"t = {peak['time_s']:.0f} s, peak {peak['temperature_c']:.1f} °C",
            "stage": peak["stage"],
            "sonication": peak["sonication"],
            "time_s": peak["time_s"],
            "peak_c": peak["temperature_c"],
            "temperature_c": np.asarray(field_c),
            "dose_cem43": dose,
        })
    return snapshots


def dose_after(result, report: Mapping, side: str | None, last_index: int) -> np.ndarray:
    """CEM43 accumulated by the end of sonication ``last_index`` (and its cooling).

    Re-simulates the protocol truncated after that sonication, with every power
    fixed to the value the full simulation titrated (so the history up to there is
    the same), and returns that run's dose map.
    """
    sonications = [s for s in report["sonications"] if s.get("side") in (side, None)]
    if last_index >= len(sonications):
        return np.asarray(result.sides[side].dose_cem43)
    from .planner import simulate
    from .protocol import load_protocol

    protocol = result.protocol
    gaussian = protocol.transducer.model == "gaussian"
    entries = []
    for sonication, reported in zip(protocol.sonications[:last_index], sonications):
        entry = {"stage": sonication.stage, "duration_s": sonication.duration_s, "cooling_s": sonication.cooling_s}
        if gaussian:
            entry["absorbed_power_w"] = float(reported["absorbed_power_w"])
        else:
            entry["power_w"] = float(reported["power_w"])
        if sonication.offset_mm is not None:
            entry.update(offset_mm=list(sonication.offset_mm), offset_frame=sonication.offset_frame)
        entries.append(entry)
    spec = {**protocol.spec, "sonications": entries}
    sides = None if side is None else (side,)
    truncated = simulate(load_protocol(spec), scan=result.scan, targets=result.targets, sides=sides)
    return np.asarray(truncated.sides[side].dose_cem43)


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


# ------------------------------------------------------------------------- markdown


def demo_markdown(report: Mapping, snapshots, timings: Mapping[str, float], side: str | None) -> str:
    """The demo's notes: what each stage does, with this run's numbers (markdown text)."""
    from .figures import cumulative_dose, focus_curve, sonication_windows

    target = next((t for t in report.get("targets", []) if t.get("side") == side), None)
    windows = sonication_windows(report, side)
    time_s, focus_c = focus_curve(report, side)
    dose = cumulative_dose(time_s, focus_c)

    def dose_by(t_s):
        return float(np.interp(t_s, time_s, dose))

    def peak_of(stage):
        return [w for w in windows if w["stage"] == stage]

    lesions = {float(l["threshold_cem43"]): l for l in report.get("lesions", []) if l.get("side") in (side, None)}
    thresholds = sorted(lesions)
    where = f"on the {side}" if side else "in a homogeneous brain-tissue phantom"
    lines = [
        f"# fusplan teaching demo: a staged focused ultrasound thalamotomy {where}",
        "",
        f"Protocol **{report.get('protocol', '')}**, fusplan {report.get('fusplan_version', '')}. "
        "This is a teaching simulation, not a treatment plan.",
        "",
    ]
    if side is not None and target is not None:
        lines += [
            "## Target",
            "",
            f"The Morel atlas was registered to the scan and the target **{target.get('name', '')}** (posterior "
            f"central lateral nucleus) located on the {side}: RAS ({_vec(target['ras_mm'])}) mm, AC-PC "
            f"({_vec(target['acpc_mm'])}) mm (x to the right, y anterior, z superior from the mid-commissural point).",
        ]
        landmarks = report.get("landmarks") or {}
        if landmarks:
            lines += ["", "Landmarks (RAS mm): " + "; ".join(f"{k} ({_vec(v)})" for k, v in landmarks.items()) + "."]
        lines += [
            "",
            "The planning grid is aligned with the AC-PC frame and centred on the target; the transducer's beam "
            "comes from above (superior).",
            "",
        ]
    lines += [
        "## The stages",
        "",
        "| # | stage | power W | energy J | peak °C (true) | peak °C (thermometry) | focus dose after, CEM43 |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in windows:
        thermo = w.get("thermometry_peak_c")
        lines.append(
            f"| {w['index']} | {w['stage']} | {_num(w.get('power_w'), 0)} | {_num(w.get('energy_j'), 0)} | "
            f"{_num(w.get('peak_temperature_c'), 1)} | {_num(thermo, 1)} | {_dose_text(dose_by(w['end_s']))} |"
        )
    alignment, verification, treatment = peak_of("alignment"), peak_of("verification"), peak_of("treatment")
    measured = any(w.get("thermometry_peak_c") is not None for w in windows)

    def peak_text(w) -> str:
        if w.get("thermometry_peak_c") is None:
            return f"{w['peak_temperature_c']:.1f} °C"
        return f"{w['thermometry_peak_c']:.1f} °C on MR thermometry (true peak {w['peak_temperature_c']:.1f} °C)"

    lines += [""]
    if measured:
        lines += [
            "Peaks are titrated on what MR thermometry would display: the temperature averaged over a thermometry "
            "voxel (several mm, larger than the ~1.5 mm focal spot) and an acquisition frame. The true peak of "
            "the field is therefore higher than the displayed one; both are listed.",
            "",
        ]
    if alignment:
        w = alignment[-1]
        after = dose_by(w["end_s"])
        lines += [
            "### Alignment: where is the focus?",
            "",
            f"A low-energy sonication ({w['duration_s']:g} s at {_num(w.get('power_w'), 0)} W) heats the focus to "
            f"{peak_text(w)}. This small hot spot on MR thermometry shows *where* the beam actually focuses, so "
            "the team can correct the electronic steering before any damage is possible. "
            f"The dose at the focus stays at {_dose_text(after)} CEM43"
            + (", far below the 17 CEM43 contour." if after < 17 else
               ": above 17 CEM43 already, so this alignment is hotter than it needs to be."),
            "",
        ]
    if verification:
        w = verification[-1]
        after = dose_by(w["end_s"])
        lines += [
            "### Verification: is it the right place?",
            "",
            f"Energy is raised to {peak_text(w)}, with {_num(w.get('power_w'), 0)} W for {w['duration_s']:g} s: "
            "a level meant to be reversible. In the awake patient this can transiently change symptoms or cause side "
            "effects, which confirms (or refutes) the target before a permanent lesion is made. "
            f"The dose at the very focus reaches {_dose_text(after)} CEM43"
            + (": below the 240 CEM43 ablation threshold, as intended." if after < 240 else
               ": already above 240 CEM43, so in this simulation verification coagulates a small core "
               "(the green contour in the verification row of `stages.png`) although thermometry shows only "
               f"{_num(w.get('thermometry_peak_c', w['peak_temperature_c']), 1)} °C; a lower verification peak "
               "would keep it reversible."),
            "",
        ]
    if treatment:
        powers = [w.get("power_w") for w in treatment if w.get("power_w")]
        shown = [w.get("thermometry_peak_c") for w in treatment]
        lines += [
            "### Treatment: making the lesion",
            "",
            f"{len(treatment)} treatment sonications"
            + (f" titrated to {', '.join(f'{t:.1f}' for t in shown)} °C on thermometry (true peaks "
               if all(t is not None for t in shown) else " with peaks of (")
            + ", ".join(f"{w['peak_temperature_c']:.1f}" for w in treatment) + " °C"
            + (f"; powers {min(powers):.0f}-{max(powers):.0f} W)" if powers else ")")
            + ". Energy is raised because the thermal dose grows exponentially with temperature: above 43 °C every "
            "extra degree halves the time needed (240 CEM43 takes 112 s at 50 °C but 3.5 s at 55 °C). Repeating the "
            "sonication, with cooling in between so that the skull and the surrounding brain recover, grows the "
            f"lesion step by step. At the end the focus has received {_dose_text(float(dose[-1]))} CEM43.",
            "",
        ]
    lines += [
        "### The 17 and 240 CEM43 contours",
        "",
        "CEM43 (cumulative equivalent minutes at 43 °C) converts any temperature history into the time at 43 °C "
        "that would do the same damage. Consoles draw two contours: inside **240 CEM43** tissue is coagulated "
        "(the lesion core, close to the lesion seen on the day-1 MRI); between **17** and 240 CEM43 tissue is "
        "injured but may recover (the oedema rim).",
        "",
    ]
    if lesions:
        lines += ["| threshold CEM43 | LR mm | AP mm | SI mm | volume mm³ | diameter mm | nuclei (% of lesion) |",
                  "|---|---|---|---|---|---|---|"]
        for threshold in thresholds:
            lesion = lesions[threshold]
            nuclei = ", ".join(f"{name} {100 * n['fraction_of_lesion']:.0f}%"
                               for name, n in (lesion.get("nuclei") or {}).items()) or "-"
            lines.append(
                f"| {threshold:g} | {lesion['lr_mm']:.2f} | {lesion['ap_mm']:.2f} | {lesion['si_mm']:.2f} | "
                f"{lesion['volume_mm3']:.1f} | {lesion['equivalent_diameter_mm']:.2f} | {nuclei} |")
        lines += ["", "CLT lesions reported by Jeanmonod et al. (2012) were 3-4 mm in diameter.", ""]
    lines += [
        "## Figures",
        "",
        "- `focus.png`: focus temperature against time (stages shaded, peaks annotated) and the dose accumulated at "
        "the focus (log axis, right).",
        "- `stages.png`: isotherms and the dose contours so far, at the hottest moment of "
        + ", ".join(f"{s['stage']} (t = {s['time_s']:.0f} s, {s['peak_c']:.1f} °C)" for s in snapshots)
        + "; planes through the target, aligned with the AC-PC frame.",
        "- `procedure.gif`: the temperature field through the whole procedure.",
        "- `report.json`, `summary.md`, NIfTI maps: the plan itself.",
        "",
        "## Run",
        "",
        f"Targeting {timings.get('targeting_s', 0):.1f} s, simulation {timings.get('simulation_s', 0):.1f} s, "
        f"figures {timings.get('figures_s', 0):.1f} s, total {timings.get('total_s', 0):.1f} s.",
        "",
        "Limits: homogeneous brain tissue, an idealised skull (one transmission factor), no aberration; clinical "
        "simulations of CLT under-estimated the focal rise by ~24 % and the focus size by 20-40 % "
        "(Pulkkinen et al. 2014), which is why treatment sonications are titrated on thermometry.",
        "",
    ]
    return "\n".join(lines)


def _vec(values) -> str:
    return ", ".join(f"{float(v):.1f}" for v in values)


def _num(value, decimals: int) -> str:
    return "-" if value is None else f"{float(value):.{decimals}f}"


def _dose_text(value: float) -> str:
    if value < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``fusplan demo`` arguments to ``parser``."""
    parser.add_argument("--out", default="fusplan-demo", metavar="DIR",
                        help="output folder (default: ./fusplan-demo)")
    parser.add_argument("--scan", default=None, metavar="SCAN",
                        help="head scan to plan on (default: the bundled Colin27 sample)")
    parser.add_argument("--protocol", default=None, metavar="PROTOCOL",
                        help="protocol file or bundled name (default: the bundled staged CLT protocol)")
    parser.add_argument("--side", default=DEMO_SIDE, choices=("left", "right"), help="side to plan (default: left)")
    parser.add_argument("--frames", type=int, default=ANIMATION_FRAMES, metavar="N",
                        help=f"frames of the animation (default: {ANIMATION_FRAMES})")
    parser.add_argument("--registration", default="standard", choices=("standard", "fast", "affine"),
                        help="registration preset: standard (default), fast, or affine (quickest, least accurate)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return parser


def run_demo_from_args(args: argparse.Namespace) -> int:
    """Run ``fusplan demo`` from parsed arguments; returns the exit status."""
    if not 2 <= args.frames <= 400:
        raise FusplanInputError(f"--frames must be between 2 and 400 (got {args.frames})")

    def say(message: str) -> None:
        print(f"fusplan demo: {message}", file=sys.stderr, flush=True)

    written = run_demo(args.out, scan_path=args.scan, protocol=args.protocol, side=args.side,
                       animation_frames=args.frames, registration_settings=args.registration,
                       progress=None if args.quiet else say)
    for name in ("demo.md", "focus.png", "stages.png", "procedure.gif"):
        if name in written:
            print(written[name])
    return 0
