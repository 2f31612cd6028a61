"""Qt-free teaching text: one step per stage, every sentence derived from this simulation's numbers.

The plugin keeps this prose here until the shared library module (``fusplan.teaching``,
shared with ``fusplan demo``) exists; :func:`teaching_steps` is the one place to point
at it. Nothing is asserted that the numbers do not show: heating is called reversible
only while the dose at the focus stays below the lowest lesion threshold, and a
permanent lesion is named only once the focus dose reached the lesion threshold.
"""
from __future__ import annotations

import numpy as np

#: Dose (CEM43 min) taken as the threshold of a permanent lesion when the protocol reports it.
LESION_CEM43 = 240.0


def teaching_steps(document: dict, sides) -> list[dict]:
    """One step per stage present: ``stage``, ``title``, ``time_s`` (its peak) and ``text``.

    Parameters
    ----------
    document : dict
        ``SimulationResult.to_dict()`` (the JSON the CLI prints).
    sides : sequence of str or None
        Sides to describe (``[None]`` in the phantom); every side is named in the text.
    """
    from fusplan.figures import stage_peaks

    sides = list(sides)
    by_stage: dict[str, list[tuple]] = {}
    for side in sides:
        for peak in stage_peaks(document, side):
            by_stage.setdefault(peak["stage"], []).append((side, peak))
    steps = []
    for stage, peaks in sorted(by_stage.items(), key=lambda item: min(p["time_s"] for _, p in item[1])):
        last = stage == max(by_stage, key=lambda name: max(p["time_s"] for _, p in by_stage[name]))
        sentences = [_stage_sentence(document, stage, side, peak, last) for side, peak in peaks]
        steps.append({"stage": stage, "title": stage.capitalize(),
                      "time_s": float(max(p["time_s"] for _, p in peaks)), "text": "\n\n".join(sentences)})
    return steps


def _thresholds(document: dict) -> list[float]:
    return sorted({float(entry["threshold_cem43"]) for entry in document.get("lesions", [])})


def _stage_sentence(document: dict, stage: str, side, peak: dict, last: bool) -> str:
    from fusplan.figures import cumulative_dose, focus_curve, sonication_windows

    windows = [w for w in sonication_windows(document, side) if w["stage"] == stage]
    hottest = next(w for w in windows if w["index"] == peak["sonication"])
    time_s, temperature_c = focus_curve(document, side)
    dose_cem43 = float(np.interp(max(w["end_s"] for w in windows), time_s, cumulative_dose(time_s, temperature_c)))
    who = f"{side.capitalize()} side, {stage}" if side else stage.capitalize()
    power_w = max(w["power_w"] for w in windows)
    number = f"sonication {windows[0]['index']}" if len(windows) == 1 else \
        f"sonications {windows[0]['index']}-{windows[-1]['index']}"
    text = (f"{who}: {number} at up to {power_w:.3g} W reached {hottest['peak_temperature_c']:.1f} °C at the focus"
            + (f" ({hottest['thermometry_peak_c']:.1f} °C on thermometry)" if hottest.get("thermometry_peak_c")
               is not None else "")
            + f"; the focus dose is {dose_cem43:.3g} CEM43 by the end of this stage. ")
    return text + _dose_meaning(document, side, dose_cem43, last)


def _dose_meaning(document: dict, side, dose_cem43: float, last: bool) -> str:
    """What the dose means, from the thresholds the protocol reports."""
    thresholds = _thresholds(document)
    lesion_at = LESION_CEM43 if LESION_CEM43 in thresholds else (max(thresholds) if thresholds else LESION_CEM43)
    lowest = min(thresholds) if thresholds else lesion_at
    if dose_cem43 >= lesion_at and last:
        return (f"That is at or above {lesion_at:g} CEM43: tissue at the focus is permanently ablated; "
                f"the final {lesion_at:g} CEM43 lesion{_side_words(side)} measures "
                f"{_lesion_text(document, side, lesion_at)}.")
    if dose_cem43 >= lesion_at:
        return (f"That is already at or above {lesion_at:g} CEM43: this stage has made a permanent lesion at the "
                f"focus (not only reversible heating).")
    if dose_cem43 >= lowest:
        return (f"That is above {lowest:g} but below {lesion_at:g} CEM43: tissue is damaged but a permanent lesion "
                f"is not reached yet.")
    return (f"That is below {lowest:g} CEM43, so the heating so far is reversible: the clinician can check the "
            f"position and the patient's response before any permanent lesion.")


def _side_words(side) -> str:
    return f" ({side})" if side else ""


def _lesion_text(document: dict, side, threshold: float) -> str:
    entry = next((e for e in document.get("lesions", []) if float(e["threshold_cem43"]) == threshold
                  and (side is None or e.get("side") in (None, side))), None)
    if entry is None or entry["volume_mm3"] <= 0:
        return "nothing on the planning grid"
    text = (f"{entry['lr_mm']:.1f} x {entry['ap_mm']:.1f} x {entry['si_mm']:.1f} mm (LR x AP x SI), "
            f"{entry['volume_mm3']:.1f} mm³")
    nuclei = entry.get("nuclei") or {}
    if nuclei:
        name, fractions = max(nuclei.items(), key=lambda item: item[1]["fraction_of_lesion"])
        text += f", {100 * fractions['fraction_of_lesion']:.0f}% of it in {name}"
    return text
