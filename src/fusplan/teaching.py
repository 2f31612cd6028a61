"""Teaching prose derived from a simulation's numbers (shared by ``fusplan demo`` and the napari plugin).

Every claim about damage is decided by the numbers: the thermal dose accumulated
at the focus is compared with the two contours clinical consoles draw,
:data:`~fusplan.thresholds.INJURY_CEM43` (17 CEM43) and
:data:`~fusplan.thresholds.ABLATION_CEM43` (240 CEM43) (docs/physics.md; Sapareto &
Dewey 1984 for CEM43). Nothing is asserted that the numbers contradict: a
verification whose focus dose exceeds 240 CEM43 is said to coagulate, never to be
reversible. What the model was (transducer, skull, tissue) is read from the run too.

Input is typed: a :class:`fusplan.timeline.Timeline` (sonications and focus curve)
and the side's :class:`fusplan.results.Region` list (lesions with their meaning and
band), from a live result (``result.timeline(side)``, ``result.regions(side)``) or a
saved report (:meth:`Timeline.from_report`, :func:`fusplan.results.regions_from_report`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from collections.abc import Mapping, Sequence

from . import formatting as fmt
from .thresholds import ABLATION_CEM43, DAY1_T1_CEM43, DAY1_T2_CEM43, INJURY_CEM43
from .timeline import Timeline

if TYPE_CHECKING:
    from .results import Region, SimulationResult

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


def stage_steps(timeline: Timeline, regions: Sequence[Region] = ()) -> list[StageStep]:
    """One :class:`StageStep` per stage present in ``timeline``, in time order.

    Parameters
    ----------
    timeline : Timeline
        One side's sonications and focus curve (``result.timeline(side)``).
    regions : sequence of Region
        The side's dose regions (``result.regions(side)``): the treatment paragraph
        names the 240 CEM43 lesion's size.
    """
    steps = []
    for peak in timeline.stage_peaks():
        stage = peak.stage
        members = [w.record for w in timeline.stage_members(stage)]
        hottest = next(r for r in members if r.index == peak.sonication)
        kind = "emitted" if any(r.power_w for r in members) else "absorbed"
        powers = [r.power_w if kind == "emitted" else r.absorbed_power_w for r in members]
        powers = [float(p) for p in powers if p is not None]
        step = dict(stage=stage, title=stage.capitalize(), time_s=peak.time_s,
                    sonications=tuple(r.index for r in members), power_w=max(powers) if powers else None,
                    power_kind=kind, peak_c=max(r.peak_temperature_c for r in members),
                    thermometry_peak_c=hottest.thermometry_peak_c,
                    focus_dose_cem43=timeline.dose_after(members[-1].index))
        steps.append(StageStep(**step, text=_stage_text(step, regions)))
    return steps


def _stage_text(step: dict, regions: Sequence[Region]) -> str:
    stage, dose = step["stage"], step["focus_dose_cem43"]
    numbers = f"{_sonications_text(step['sonications'])} at {_power_text(step)} reached {_peak_text(step)}."
    dose_sentence = (f"The focus has received {fmt.dose(dose)} CEM43 by the end of this stage: "
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
                f"{lesion_text(regions)}.")
    return f"{step['title']}: {numbers} {dose_sentence}"


def _sonications_text(indices: Sequence[int]) -> str:
    return f"sonication {indices[0]}" if len(indices) == 1 else f"sonications {indices[0]}-{indices[-1]}"


def _power_text(step: dict) -> str:
    if step["power_w"] is None:
        return "the titrated power"
    prefix = "up to " if len(step["sonications"]) > 1 else ""
    if step["power_kind"] == "absorbed":
        return f"{prefix}{fmt.absorbed_power(step['power_w'])} W absorbed"
    return f"{prefix}{fmt.power(step['power_w'])} W"


def _peak_text(step: dict) -> str:
    prefix = "up to " if len(step["sonications"]) > 1 else ""
    text = f"{prefix}{fmt.temperature(step['peak_c'])} °C at the focus"
    if step["thermometry_peak_c"] is not None:
        text += f" ({fmt.temperature(step['thermometry_peak_c'])} °C on thermometry)"
    return text


def lesion_text(regions: Sequence[Region]) -> str:
    """The 240 CEM43 lesion among a side's ``regions`` in words: size, volume and the nucleus holding most of it."""
    region = next((r for r in regions if r.threshold_cem43 == ABLATION_CEM43), None)
    if region is None:
        return f"nothing (no {ABLATION_CEM43:g} CEM43 threshold in this protocol)"
    lesion = region.lesion
    if lesion.volume_mm3 <= 0:
        return f"nothing: no tissue reached {ABLATION_CEM43:g} CEM43"
    text = (f"{fmt.length(lesion.lr_mm)} x {fmt.length(lesion.ap_mm)} x {fmt.length(lesion.si_mm)} mm (LR x AP x SI), "
            f"{fmt.volume(lesion.volume_mm3)} mm³")
    if lesion.nuclei:
        name, fractions = max(lesion.nuclei.items(), key=lambda item: item[1]["fraction_of_lesion"])
        text += f", {fmt.percent(fractions['fraction_of_lesion'])}% of it in {name}"
    return text


# ------------------------------------------------------------------------------ demo notes


def demo_markdown(result: SimulationResult, side: str | None, snapshots: Sequence[Mapping],
                  timings: Mapping[str, float]) -> str:
    """The demo's notes (markdown): the target, each stage with this run's numbers, the lesion, the model, the figures.

    Parameters
    ----------
    result : fusplan.results.SimulationResult
        The simulated plan (its timeline, regions, targets, protocol and skull model).
    side : str or None
        The side planned (``None`` in the phantom).
    snapshots : sequence of mapping
        The stage snapshots drawn in ``stages.png`` (``stage``, ``time_s``, ``peak_c``).
    timings : mapping
        ``targeting_s``, ``simulation_s``, ``uncertainty_s``, ``figures_s``, ``total_s``
        (missing ones read 0).
    """
    from ._version import __version__

    timeline = result.timeline(side)
    regions = result.regions(side)
    where = f"on the {side}" if side else "in a homogeneous brain-tissue phantom"
    lines = [
        f"# fusplan teaching demo: a staged focused ultrasound thalamotomy {where}",
        "",
        f"Protocol **{result.protocol.name}**, fusplan {__version__}. "
        "This is a teaching simulation, not a treatment plan.",
        "",
    ]
    lines += _target_section(result, side)
    skull_column = any(r.skull_absorbed_power_w is not None for r in timeline.sonications)
    lines += [
        "## The stages",
        "",
        "| # | stage | power W | energy J | peak °C (true) | peak °C (thermometry) | focus dose after, CEM43 |"
        + (" absorbed in skull W |" if skull_column else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if skull_column else ""),
    ]
    for record in timeline.sonications:
        lines.append(
            f"| {record.index} | {record.stage} | {fmt.power(record.power_w)} | {fmt.energy(record.energy_j)} | "
            f"{fmt.temperature(record.peak_temperature_c)} | {fmt.temperature(record.thermometry_peak_c)} | "
            f"{fmt.dose(timeline.dose_after(record.index))} |"
            + (f" {fmt.power(record.skull_absorbed_power_w)} |" if skull_column else ""))
    lines += [""]
    if timeline.has_thermometry:
        lines += [
            "Peaks are titrated on what MR thermometry would display: the temperature averaged over a thermometry "
            "voxel (several mm, larger than the ~1.5 mm focal spot) and an acquisition frame. The true peak of "
            "the field is therefore higher than the displayed one; both are listed.",
            "",
        ]
    for step in stage_steps(timeline, regions):
        question = STAGE_QUESTIONS.get(step.stage)
        lines += [f"### {step.title}" + (f": {question}" if question else ""), "", step.text, ""]
        if step.stage == "treatment":
            lines += [
                "Energy is raised because the thermal dose grows exponentially with temperature: above 43 °C every "
                "extra degree halves the time needed (240 CEM43 takes 112 s at 50 °C but 3.5 s at 55 °C). "
                "Repeating the sonication, with cooling in between, grows the lesion step by step.",
                "",
            ]
    lines += _contours_section(regions)
    lines += [
        "## Figures",
        "",
        "- `focus.png`: focus temperature against time (top panel: stages shaded, each sonication's peak annotated "
        "with its number) and the dose accumulated at the focus (bottom panel, log axis, with the dose thresholds).",
        "- `stages.png`: isotherms and the dose contours so far, at the hottest moment of "
        + ", ".join(f"{s['stage']} (t = {s['time_s']:.0f} s, {fmt.temperature(s['peak_c'])} °C)" for s in snapshots)
        + "; planes through the target, aligned with the AC-PC frame.",
        "- `procedure.gif`: the temperature field through the whole procedure.",
        "- `report.json`, `summary.md`, NIfTI maps: the plan itself.",
        "",
        "## Model",
        "",
        model_text(result, side),
        "",
        "## Run",
        "",
        f"Targeting {timings.get('targeting_s', 0):.1f} s, simulation {timings.get('simulation_s', 0):.1f} s, "
        f"uncertainty band {timings.get('uncertainty_s', 0):.1f} s, figures {timings.get('figures_s', 0):.1f} s, "
        f"total {timings.get('total_s', 0):.1f} s.",
        "",
    ]
    return "\n".join(lines)


def model_text(result: SimulationResult, side: str | None) -> str:
    """What this run modelled, in words: the transducer, the skull, the tissue, and the known limits.

    Read from the run itself (the protocol's transducer and the side's skull model),
    so the text changes with the model: a ray-traced skull is never called idealised.
    """
    transducer = result.protocol.transducer
    skull = result.sides[side].skull
    kind = transducer.kind
    if not kind.radiates:
        source = (f"the heat source is given directly, a Gaussian of {' x '.join(f'{w:g}' for w in transducer.fwhm_mm)} "
                  "mm FWHM (no acoustics, no skull)")
    elif not kind.elements:
        source = f"a single focused bowl at {transducer.frequency_khz:g} kHz, radius {transducer.radius_mm:g} mm"
    else:
        source = (f"a {transducer.elements}-element hemispherical array at {transducer.frequency_khz:g} kHz, "
                  f"radius {transducer.radius_mm:g} mm, each element's field summed at every voxel (Rayleigh integral)")
    if skull is not None:
        correction = (f"per-element phase correction from the CT (residual phase spread "
                      f"{fmt.ratio(float(skull.residual_phase_std_rad[skull.active].mean()))} rad)"
                      if skull.phase_correction == "ct" else "no phase correction (the skull's aberration is left in)")
        skull_text = (f"rays traced from every element through the {skull.source} skull "
                      f"({skull.active_elements} of {len(skull.active)} elements active), giving each element its "
                      f"transmission and phase delay (energy transmission {fmt.ratio(skull.energy_transmission)}), "
                      f"with {correction}")
    elif not kind.radiates:
        skull_text = ""
    else:
        aberration = (f"a random phase aberration of {transducer.phase_aberration_std_rad:g} rad"
                      if transducer.phase_aberration_std_rad else "no phase aberration")
        skull_text = (f"an idealised skull: one energy transmission factor ({transducer.skull_transmission:g}) "
                      f"for every element and {aberration}")
    parts = [f"Source: {source}."]
    if skull_text:
        parts.append(f"Skull: {skull_text}.")
    parts.append("Tissue: homogeneous brain (one set of acoustic and thermal properties, Pennes perfusion), "
                 "no vessels or cerebrospinal fluid.")
    parts.append("Clinical simulations of CLT under-estimated the focal rise by ~24 % and the focus size by 20-40 % "
                 "(Pulkkinen et al. 2014), which is why treatment sonications are titrated on thermometry.")
    return " ".join(parts)


def _target_section(result: SimulationResult, side: str | None) -> list[str]:
    targets = result.targets
    target = None if targets is None else next((t for t in targets.targets if t.side == side), None)
    if side is None or target is None:
        return []
    lines = [
        "## Target",
        "",
        f"The atlas was registered to the scan and the target **{target.name}** located on the {side}: "
        f"RAS {fmt.vector(target.ras_mm)} mm, AC-PC {fmt.vector(target.acpc_mm)} mm (x to the right, y anterior, "
        "z superior from the mid-commissural point).",
    ]
    if targets.landmarks:
        lines += ["", "Landmarks (RAS mm): " + "; ".join(f"{k} {fmt.vector(v)}" for k, v in targets.landmarks.items())
                  + "."]
    return lines + ["", "The planning grid is aligned with the AC-PC frame and centred on the target; the "
                        "transducer's beam comes from above (superior).", ""]


def _contours_section(regions: Sequence[Region]) -> list[str]:
    lines = [
        f"### The {INJURY_CEM43:g} and {ABLATION_CEM43:g} CEM43 contours",
        "",
        "CEM43 (cumulative equivalent minutes at 43 °C) converts any temperature history into the time at 43 °C "
        f"that would do the same damage. Consoles draw two contours: inside **{ABLATION_CEM43:g} CEM43** tissue is "
        "coagulated (the necrotic core); between "
        f"**{INJURY_CEM43:g}** and {ABLATION_CEM43:g} CEM43 tissue is injured but may recover (the oedema rim). "
        "The lesion a clinician measures on the day-1 MRI is larger than the core: on T1 it matched the "
        f"{DAY1_T1_CEM43:g} CEM43 contour and on T2 the {DAY1_T2_CEM43:g} CEM43 contour (Huang et al. 2018), "
        "so those are drawn too.",
        "",
    ]
    if not regions:
        return lines
    lines += ["| threshold CEM43 | corresponds to | LR mm | AP mm | SI mm | volume mm³ | diameter mm | "
              "nuclei (% of lesion) |", "|---|---|---|---|---|---|---|---|"]
    for region in regions:
        lesion = region.lesion
        nuclei = ", ".join(f"{name} {fmt.percent(n['fraction_of_lesion'])}%"
                           for name, n in lesion.nuclei.items()) or "-"
        lines.append(
            f"| {fmt.threshold(region.threshold_cem43)} | {region.meaning or '-'} | {fmt.length(lesion.lr_mm)} | "
            f"{fmt.length(lesion.ap_mm)} | {fmt.length(lesion.si_mm)} | {fmt.volume(lesion.volume_mm3)} | "
            f"{fmt.length(lesion.equivalent_diameter_mm)} | {nuclei} |")
    return lines + [""] + _day1_section(regions) + [
        "CLT lesions reported by Jeanmonod et al. (2012) were 3-4 mm in diameter; Moser et al. (2013) measured "
        "68.5 ± 39.7 mm³ on day-2 T1 (about 5.1 mm).", ""]


def _day1_section(regions: Sequence[Region]) -> list[str]:
    """The day-1 T1 equivalent lesion and, when computed, its uncertainty band, in words."""
    region = next((r for r in regions if r.threshold_cem43 == DAY1_T1_CEM43), None)
    if region is None:
        return []
    text = (f"The **day-1 T1 equivalent lesion** ({DAY1_T1_CEM43:g} CEM43) is "
            f"{fmt.length(region.lesion.equivalent_diameter_mm)} mm in equivalent diameter")
    if region.thermometry is not None:
        text += (f" on the true field and {fmt.length(region.thermometry.equivalent_diameter_mm)} mm on the simulated "
                 "MR thermometry (voxel and frame averaged, the basis the threshold was fitted on)")
    band = region.uncertainty
    if band:
        d = band["equivalent_diameter_mm"]
        text += (f". Drawing tissue properties, focal spread, heating efficiency, thermometry noise and targeting "
                 f"error from their published ranges, it lies between {fmt.length(d['p5'])} and "
                 f"{fmt.length(d['p95'])} mm in 90 % of cases (median {fmt.length(d['p50'])} mm). "
                 + (f"{band['explanation']} " if band.get("explanation") else "")
                 + "The band does not include errors of the model's own form, and an uncalibrated model "
                 "under-estimates the focus (Pulkkinen et al. 2014): calibrating on the alignment sonication's "
                 "thermometry (`--thermometry`) narrows and corrects it")
    return [text + ".", ""]
