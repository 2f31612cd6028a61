"""Markdown of the report's clinical blocks: isotherms, calibration, prediction, uncertainty band.

:func:`clinical_sections` renders them from the contract JSON (``report.summary_markdown``
appends its lines), so ``summary.md`` shows what every region corresponds to, what the
calibration fitted and the 5-95 % band of the lesion a planner decides on.
"""
from __future__ import annotations

from . import formatting as fmt

__all__ = ["clinical_sections", "band_text", "thermometry_columns"]


def band_text(uncertainty: dict) -> str:
    """One line: median diameter with its 5-95 % range, coverage and spill (the explanation apart)."""
    d = uncertainty["equivalent_diameter_mm"]
    text = (f"diameter {fmt.length(d['p50'])} mm (5-95 %: {fmt.length(d['p5'])}-{fmt.length(d['p95'])} mm), "
            f"covers the target with probability {fmt.probability(uncertainty['target_coverage_probability'])}")
    spill = uncertainty.get("spill") or {}
    if spill:
        text += "; spill: " + ", ".join(f"{name} p={fmt.probability(s['probability'])} "
                                         f"(95 %: {fmt.volume(s['volume_mm3_p95'])} mm^3)" for name, s in spill.items())
    return text


def _band_lines(title: str, uncertainty: dict) -> list[str]:
    """The band in one line, then what it is centred on and what coverage means."""
    lines = [f"{title}: {band_text(uncertainty)}.", ""]
    if uncertainty.get("explanation"):
        lines += [uncertainty["explanation"], ""]
    return lines


def thermometry_columns(entry: dict) -> list[str]:
    """``LR x AP x SI`` and equivalent diameter (mm) of a region's thermometry basis (``-`` without it)."""
    th = entry.get("thermometry")
    if not th:
        return ["-", "-"]
    return [f"{fmt.length(th['lr_mm'])} x {fmt.length(th['ap_mm'])} x {fmt.length(th['si_mm'])}",
            fmt.length(th["equivalent_diameter_mm"])]


def _region_rows(entries: list, level_key: str, unit: str) -> list[str]:
    sided = any("side" in e for e in entries)
    head = (["side"] if sided else []) + [unit, "corresponds to", "LR mm", "AP mm", "SI mm", "diameter mm",
                                          "on thermometry: LR x AP x SI mm", "on thermometry: diameter mm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        row = ([e.get("side") or ""] if sided else []) + [
            fmt.threshold(e[level_key]), e.get("corresponds_to", "-"), fmt.length(e.get("lr_mm")),
            fmt.length(e.get("ap_mm")), fmt.length(e.get("si_mm")), fmt.length(e.get("equivalent_diameter_mm")),
            *thermometry_columns(e)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def clinical_sections(report: dict) -> list[str]:
    """Markdown lines for ``isotherms``, ``lesion_model``, ``calibration``, ``prediction`` and ``uncertainty``."""
    lines: list[str] = []
    model = report.get("lesion_model")
    if model:
        basis = model.get("default_basis")
        lines += [f"Default comparison: {model['corresponds_to']} "
                  f"({model['default_threshold_cem43']:g} CEM43; {model['source']})"
                  + (f", on the {basis} basis: {model['basis_reason']}" if basis else "") + ".", ""]
    isotherms = report.get("isotherms") or []
    if isotherms:
        lines += ["## Maximum-temperature isotherms", ""] + _region_rows(isotherms, "max_temperature_c", "max C") + [""]
    for lesion in report.get("lesions") or []:
        if "uncertainty" in lesion:
            lines += _band_lines(f"Uncertainty band of the {fmt.threshold(lesion['threshold_cem43'])} CEM43 lesion"
                                 + (f" ({lesion['side']})" if lesion.get("side") else ""), lesion["uncertainty"])
    calibration = report.get("calibration")
    if calibration:
        u = calibration.get("uncertainty") or {}
        lines += ["## Calibration on measured thermometry", "",
                  "| parameter | fitted | +/- (1 SD) |", "|---|---|---|",
                  f"| heating efficiency | {fmt.ratio(calibration['heating_efficiency'])} | "
                  f"{fmt.ratio(u.get('heating_efficiency'))} |",
                  f"| focal spread | {fmt.ratio(calibration['focal_spread'])} | {fmt.ratio(u.get('focal_spread'))} |",
                  f"| spot offset RAS mm | {fmt.vector(calibration['offset_ras_mm'])} | "
                  f"{fmt.vector(u.get('offset_ras_mm'))} |",
                  "", f"Fit residual {fmt.ratio(calibration['residual_c'])} C RMS; fitted: "
                  + ", ".join(calibration.get("fitted", [])) + ".", ""]
    prediction = report.get("prediction")
    if prediction:
        lines += ["## Treatment predicted with the calibrated model", "",
                  f"Calibrated focus {fmt.vector(prediction['focus_ras_mm'])} RAS mm; steering offset back on target "
                  f"{fmt.vector(prediction['steering_offset_ras_mm'])} RAS mm "
                  f"({fmt.vector(prediction['steering_offset_acpc_mm'])} "
                  "along the grid axes: AC-PC mm on a scan).", "",
                  "| # | stage | power W | energy J | peak C |", "|---|---|---|---|---|"]
        for s in prediction["sonications"]:
            lines.append(f"| {s['index']} | {s['stage']} | {fmt.power(s['power_w'])} | {fmt.energy(s['energy_j'])} | "
                         f"{fmt.temperature(s['peak_temperature_c'])} |")
        lines += ["", "Predicted lesions (before steering; steering moves them unchanged onto the target):", ""]
        lines += _region_rows(prediction["lesions"], "threshold_cem43", "CEM43") + [""]
        for lesion in prediction["lesions"]:
            if "uncertainty" in lesion:
                lines += _band_lines(f"Uncertainty band of the calibrated {fmt.threshold(lesion['threshold_cem43'])} "
                                     "CEM43 lesion", lesion["uncertainty"])
    bands = report.get("uncertainty") or []
    if bands:
        names = ", ".join(p["name"] for p in bands[0].get("parameters", []))
        lines += [f"Band: {bands[0]['samples']} samples ({bands[0]['structural_samples']} protocol runs) over {names}; "
                  "5-95 % of the model's parameter spread, not of model-structure error.", ""]
    return lines
