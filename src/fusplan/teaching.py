"""Teaching prose derived from a simulation's numbers (shared by ``fusplan demo`` and the napari plugin).

Every claim about damage is decided by the numbers: the thermal dose accumulated
at the focus is compared with the two contours clinical consoles draw,
:data:`INJURY_CEM43` (17 CEM43) and :data:`ABLATION_CEM43` (240 CEM43)
(docs/physics.md; Sapareto & Dewey 1984 for CEM43). Nothing is asserted that the
numbers contradict: a verification whose focus dose exceeds 240 CEM43 is said to
coagulate, never to be reversible.

Input is the contract's JSON report (a mapping), so the same text comes from a
live result (``result.to_dict()``) or a saved ``report.json``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

#: Thermal dose (CEM43) above which tissue is injured but may recover (outer console contour).
INJURY_CEM43 = 17.0
#: Thermal dose (CEM43) above which tissue is coagulated: a permanent lesion (inner console contour).
ABLATION_CEM43 = 240.0
#: Thermal dose (CEM43) whose contour matched the day-1 T1 lesion (Huang et al. 2018; fusplan.clinical).
DAY1_T1_CEM43 = 200.0

#: What each stage is for (the question the clinician answers with it).
STAGE_QUESTIONS = {
    "alignment": "where is the focus?",
    "verification": "is it the right place?",
    "treatment": "making the lesion",
}


def dose_meaning(dose_cem43: float) -> str:
    """What a thermal dose does to tissue, by the 17 and 240 CEM43 thresholds."""
    if dose_cem43 >= ABLATION_CEM43:
        return f"above {ABLATION_CEM43:g} CEM43, tissue there is coagulated (a permanent lesion)"
    if dose_cem43 >= INJURY_CEM43:
        return (f"between {INJURY_CEM43:g} and {ABLATION_CEM43:g} CEM43, tissue there is injured but may recover "
                "(no coagulation yet)")
    return f"below {INJURY_CEM43:g} CEM43, no lasting damage is expected (reversible heating)"


def dose_text(value: float) -> str:
    """A dose in CEM43 with sensible digits (``1.2e-05``, ``3.4``, ``369``)."""
    return f"{value:.1e}" if value < 0.01 else f"{value:.3g}"


@dataclass(frozen=True)
class StageStep:
    """One stage of a run, with its numbers and the text they support.

    Attributes
    ----------
    stage : str
        ``"alignment"``, ``"verification"``, ``"treatment"``.
    title : str
    time_s : float
        Time of the stage's hottest moment at the focus.
    sonications : tuple of int
        1-based indices of the stage's sonications.
    power_w : float or None
        Highest power of the stage (emitted W; absorbed W when ``power_kind`` says so).
    power_kind : str
        ``"emitted"`` or ``"absorbed"``.
    peak_c : float
        Highest true focal temperature of the stage.
    thermometry_peak_c : float or None
        What MR thermometry shows at that sonication (``None`` without thermometry).
    focus_dose_cem43 : float
        Dose accumulated at the focus by the end of the stage (its last cooling).
    text : str
        One paragraph, every claim derived from the numbers above.
    """

    stage: str
    title: str
    time_s: float
    sonications: tuple[int, ...]
    power_w: float | None
    power_kind: str
    peak_c: float
    thermometry_peak_c: float | None
    focus_dose_cem43: float
    text: str

    def to_dict(self) -> dict:
        """Plain JSON-able mapping."""
        return {**asdict(self), "sonications": list(self.sonications)}


def stage_steps(report: Mapping, side: str | None = None) -> list[StageStep]:
    """One :class:`StageStep` per stage present in ``report``, in time order.

    Parameters
    ----------
    report : mapping
        The contract's JSON report (``SimulationResult.to_dict()`` or ``report.json``).
    side : str, optional
        Side of a two-sided plan (default: the first side; ``None`` in the phantom).
    """
    from .figures import cumulative_dose, focus_curve, sonication_windows, stage_peaks

    windows = sonication_windows(report, side)
    time_s, temperature_c = focus_curve(report, side)
    dose = cumulative_dose(time_s, temperature_c)
    steps = []
    for peak in stage_peaks(report, side):
        stage = peak["stage"]
        members = [w for w in windows if w["stage"] == stage]
        hottest = next(w for w in members if w["index"] == peak["sonication"])
        kind = "emitted" if any(w.get("power_w") for w in members) else "absorbed"
        powers = [w.get("power_w" if kind == "emitted" else "absorbed_power_w") for w in members]
        powers = [float(p) for p in powers if p is not None]
        focus_dose = float(np.interp(max(w["end_s"] for w in members), time_s, dose))
        step = dict(stage=stage, title=stage.capitalize(), time_s=float(peak["time_s"]),
                    sonications=tuple(int(w["index"]) for w in members), power_w=max(powers) if powers else None,
                    power_kind=kind, peak_c=max(float(w["peak_temperature_c"]) for w in members),
                    thermometry_peak_c=hottest.get("thermometry_peak_c"), focus_dose_cem43=focus_dose)
        steps.append(StageStep(**step, text=_stage_text(step, report, side)))
    return steps


def _stage_text(step: dict, report: Mapping, side: str | None) -> str:
    stage, dose = step["stage"], step["focus_dose_cem43"]
    numbers = f"{_sonications_text(step['sonications'])} at {_power_text(step)} reached {_peak_text(step)}."
    dose_sentence = (f"The focus has received {dose_text(dose)} CEM43 by the end of this stage: "
                     f"{dose_meaning(dose)}.")
    if stage == "alignment":
        purpose = ("The clinician checks on MR thermometry that the hot spot sits on the planned target in all three "
                   "planes and corrects the focus if it is off.")
        warning = (" That is more than alignment needs: a lower alignment peak would avoid damage."
                   if dose >= INJURY_CEM43 else "")
        return f"Alignment: {numbers} {purpose} {dose_sentence}{warning}"
    if stage == "verification":
        if dose >= ABLATION_CEM43:
            purpose = ("Verification is meant to stay reversible, but here the focus dose already exceeds "
                       f"{ABLATION_CEM43:g} CEM43: this stage coagulates a small core, so the patient is examined after "
                       "a permanent lesion has begun. A lower verification peak would keep it reversible.")
        elif dose >= INJURY_CEM43:
            purpose = ("The clinician re-checks the position and asks the patient about effects. The focus dose is "
                       f"above {INJURY_CEM43:g} but below {ABLATION_CEM43:g} CEM43: some injury at the very focus, "
                       "no coagulation yet.")
        else:
            purpose = ("The clinician re-checks the position and asks the patient about effects (symptom relief, "
                       "paraesthesia, side effects) while the heating is still reversible, before a permanent "
                       "lesion is made.")
        return f"Verification: {numbers} {dose_sentence} {purpose}"
    if stage == "treatment":
        return (f"Treatment: {numbers} The clinician watches the peak temperature and the accumulated dose "
                f"contours. {dose_sentence} The {ABLATION_CEM43:g} CEM43 lesion measures "
                f"{lesion_text(report, side)}.")
    return f"{step['title']}: {numbers} {dose_sentence}"


def _sonications_text(indices: Sequence[int]) -> str:
    return f"sonication {indices[0]}" if len(indices) == 1 else f"sonications {indices[0]}-{indices[-1]}"


def _power_text(step: dict) -> str:
    if step["power_w"] is None:
        return "the titrated power"
    prefix = "up to " if len(step["sonications"]) > 1 else ""
    return f"{prefix}{step['power_w']:.3g} W" + (" absorbed" if step["power_kind"] == "absorbed" else "")


def _peak_text(step: dict) -> str:
    prefix = "up to " if len(step["sonications"]) > 1 else ""
    text = f"{prefix}{step['peak_c']:.1f} °C at the focus"
    if step["thermometry_peak_c"] is not None:
        text += f" ({float(step['thermometry_peak_c']):.1f} °C on thermometry)"
    return text


def lesion_text(report: Mapping, side: str | None = None) -> str:
    """The 240 CEM43 lesion of ``side`` in words: size, volume and the nucleus holding most of it."""
    lesions = [entry for entry in report.get("lesions", []) if float(entry["threshold_cem43"]) == ABLATION_CEM43
               and (side is None or entry.get("side") in (None, side))]
    if not lesions:
        return f"nothing (no {ABLATION_CEM43:g} CEM43 threshold in this protocol)"
    entry = lesions[0]
    if entry["volume_mm3"] <= 0:
        return f"nothing: no tissue reached {ABLATION_CEM43:g} CEM43"
    text = (f"{entry['lr_mm']:.1f} x {entry['ap_mm']:.1f} x {entry['si_mm']:.1f} mm (LR x AP x SI), "
            f"{entry['volume_mm3']:.1f} mm3")
    nuclei = entry.get("nuclei") or {}
    if nuclei:
        name, fractions = max(nuclei.items(), key=lambda item: item[1]["fraction_of_lesion"])
        text += f", {100 * fractions['fraction_of_lesion']:.0f}% of it in {name}"
    return text


# ------------------------------------------------------------------------------ demo notes


def demo_markdown(report: Mapping, snapshots: Sequence[Mapping], timings: Mapping[str, float],
                  side: str | None) -> str:
    """The demo's notes (markdown): the target, each stage with this run's numbers, the lesion, the figures.

    Parameters
    ----------
    report : mapping
        The contract's JSON report.
    snapshots : sequence of mapping
        The stage snapshots drawn in ``stages.png`` (``stage``, ``time_s``, ``peak_c``).
    timings : mapping
        ``targeting_s``, ``simulation_s``, ``figures_s``, ``total_s`` (missing ones read 0).
    side : str or None
        The side planned (``None`` in the phantom).
    """
    from .figures import sonication_windows

    windows = sonication_windows(report, side)
    steps = stage_steps(report, side)
    where = f"on the {side}" if side else "in a homogeneous brain-tissue phantom"
    lines = [
        f"# fusplan teaching demo: a staged focused ultrasound thalamotomy {where}",
        "",
        f"Protocol **{report.get('protocol', '')}**, fusplan {report.get('fusplan_version', '')}. "
        "This is a teaching simulation, not a treatment plan.",
        "",
    ]
    lines += _target_section(report, side)
    lines += [
        "## The stages",
        "",
        "| # | stage | power W | energy J | peak °C (true) | peak °C (thermometry) | focus dose after, CEM43 |",
        "|---|---|---|---|---|---|---|",
    ]
    dose_after = _dose_after_each(report, side)
    for w in windows:
        lines.append(
            f"| {w['index']} | {w['stage']} | {_num(w.get('power_w'), 0)} | {_num(w.get('energy_j'), 0)} | "
            f"{_num(w.get('peak_temperature_c'), 1)} | {_num(w.get('thermometry_peak_c'), 1)} | "
            f"{dose_text(dose_after[w['index']])} |")
    lines += [""]
    if any(w.get("thermometry_peak_c") is not None for w in windows):
        lines += [
            "Peaks are titrated on what MR thermometry would display: the temperature averaged over a thermometry "
            "voxel (several mm, larger than the ~1.5 mm focal spot) and an acquisition frame. The true peak of "
            "the field is therefore higher than the displayed one; both are listed.",
            "",
        ]
    for step in steps:
        question = STAGE_QUESTIONS.get(step.stage)
        lines += [f"### {step.title}" + (f": {question}" if question else ""), "", step.text, ""]
        if step.stage == "treatment":
            lines += [
                "Energy is raised because the thermal dose grows exponentially with temperature: above 43 °C every "
                "extra degree halves the time needed (240 CEM43 takes 112 s at 50 °C but 3.5 s at 55 °C). "
                "Repeating the sonication, with cooling in between, grows the lesion step by step.",
                "",
            ]
    lines += _contours_section(report, side)
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
        f"uncertainty band {timings.get('uncertainty_s', 0):.1f} s, figures {timings.get('figures_s', 0):.1f} s, "
        f"total {timings.get('total_s', 0):.1f} s.",
        "",
        "Limits: homogeneous brain tissue, an idealised skull (one transmission factor), no aberration; clinical "
        "simulations of CLT under-estimated the focal rise by ~24 % and the focus size by 20-40 % "
        "(Pulkkinen et al. 2014), which is why treatment sonications are titrated on thermometry.",
        "",
    ]
    return "\n".join(lines)


def _dose_after_each(report: Mapping, side: str | None) -> dict[int, float]:
    """Focus dose accumulated by the end of each sonication (its cooling included), by index."""
    from .figures import cumulative_dose, focus_curve, sonication_windows

    time_s, temperature_c = focus_curve(report, side)
    dose = cumulative_dose(time_s, temperature_c)
    return {w["index"]: float(np.interp(w["end_s"], time_s, dose)) for w in sonication_windows(report, side)}


def _target_section(report: Mapping, side: str | None) -> list[str]:
    target = next((t for t in report.get("targets", []) if t.get("side") == side), None)
    if side is None or target is None:
        return []
    lines = [
        "## Target",
        "",
        f"The atlas was registered to the scan and the target **{target.get('name', '')}** located on the {side}: "
        f"RAS ({_vec(target['ras_mm'])}) mm, AC-PC ({_vec(target['acpc_mm'])}) mm (x to the right, y anterior, "
        "z superior from the mid-commissural point).",
    ]
    landmarks = report.get("landmarks") or {}
    if landmarks:
        lines += ["", "Landmarks (RAS mm): " + "; ".join(f"{k} ({_vec(v)})" for k, v in landmarks.items()) + "."]
    return lines + ["", "The planning grid is aligned with the AC-PC frame and centred on the target; the "
                        "transducer's beam comes from above (superior).", ""]


def _contours_section(report: Mapping, side: str | None) -> list[str]:
    lines = [
        f"### The {INJURY_CEM43:g} and {ABLATION_CEM43:g} CEM43 contours",
        "",
        "CEM43 (cumulative equivalent minutes at 43 °C) converts any temperature history into the time at 43 °C "
        f"that would do the same damage. Consoles draw two contours: inside **{ABLATION_CEM43:g} CEM43** tissue is "
        "coagulated (the necrotic core); between "
        f"**{INJURY_CEM43:g}** and {ABLATION_CEM43:g} CEM43 tissue is injured but may recover (the oedema rim). "
        "The lesion a clinician measures on the day-1 MRI is larger than the core: on T1 it matched the "
        "200 CEM43 contour and on T2 the 100 CEM43 contour (Huang et al. 2018), so those are drawn too.",
        "",
    ]
    lesions = {float(l["threshold_cem43"]): l for l in report.get("lesions", []) if l.get("side") in (side, None)}
    if not lesions:
        return lines
    lines += ["| threshold CEM43 | corresponds to | LR mm | AP mm | SI mm | volume mm³ | diameter mm | "
              "nuclei (% of lesion) |", "|---|---|---|---|---|---|---|---|"]
    for threshold in sorted(lesions):
        lesion = lesions[threshold]
        nuclei = ", ".join(f"{name} {100 * n['fraction_of_lesion']:.0f}%"
                           for name, n in (lesion.get("nuclei") or {}).items()) or "-"
        lines.append(
            f"| {threshold:g} | {lesion.get('corresponds_to', '-')} | {lesion['lr_mm']:.2f} | {lesion['ap_mm']:.2f} | {lesion['si_mm']:.2f} | "
            f"{lesion['volume_mm3']:.1f} | {lesion['equivalent_diameter_mm']:.2f} | {nuclei} |")
    return lines + [""] + _day1_section(lesions) + [
        "CLT lesions reported by Jeanmonod et al. (2012) were 3-4 mm in diameter; Moser et al. (2013) measured "
        "68.5 ± 39.7 mm³ on day-2 T1 (about 5.1 mm).", ""]


def _day1_section(lesions: Mapping) -> list[str]:
    """The day-1 T1 equivalent lesion and, when computed, its uncertainty band, in words."""
    entry = lesions.get(DAY1_T1_CEM43)
    if entry is None:
        return []
    text = (f"The **day-1 T1 equivalent lesion** ({DAY1_T1_CEM43:g} CEM43) is {entry['equivalent_diameter_mm']:.1f} mm "
            "in equivalent diameter")
    band = entry.get("uncertainty")
    if band:
        d = band["equivalent_diameter_mm"]
        text += (f". Drawing tissue properties, focal spread, heating efficiency, thermometry noise and targeting "
                 f"error from their published ranges, it lies between {d['p5']:.1f} and {d['p95']:.1f} mm in 90 % of "
                 f"cases (median {d['p50']:.1f} mm) and covers the target point with probability "
                 f"{band['target_coverage_probability']:.2f}. The band does not include errors of the model's own "
                 "form, and an uncalibrated model under-estimates the focus (Pulkkinen et al. 2014): calibrating on "
                 "the alignment sonication's thermometry (`--thermometry`) narrows and corrects it")
    return [text + ".", ""]


def _vec(values) -> str:
    return ", ".join(f"{float(v):.1f}" for v in values)


def _num(value, decimals: int) -> str:
    return "-" if value is None else f"{float(value):.{decimals}f}"
