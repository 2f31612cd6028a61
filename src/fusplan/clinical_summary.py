"""Markdown of the report's clinical blocks: isotherms, calibration, prediction, uncertainty band.

:func:`clinical_sections` renders them from the contract JSON (``report.summary_markdown``
appends its lines), so ``summary.md`` shows what every region corresponds to, what the
calibration fitted and the 5-95 % band of the lesion a planner decides on.
"""
from __future__ import annotations

__all__ = ["clinical_sections", "band_text", "thermometry_columns"]


def _f(value, decimals: int = 1) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _vec(values, decimals: int = 1) -> str:
    return "-" if values is None else "(" + ", ".join(f"{v:.{decimals}f}" for v in values) + ")"


def band_text(uncertainty: dict) -> str:
    """One line: median diameter with its 5-95 % range, coverage and spill."""
    d = uncertainty["equivalent_diameter_mm"]
    text = (f"diameter {d['p50']:.1f} mm (5-95 %: {d['p5']:.1f}-{d['p95']:.1f} mm), "
            f"covers the target with probability {uncertainty['target_coverage_probability']:.2f}")
    spill = uncertainty.get("spill") or {}
    if spill:
        text += "; spill: " + ", ".join(f"{name} p={s['probability']:.2f} (95 %: {s['volume_mm3_p95']:.1f} mm^3)"
                                         for name, s in spill.items())
    return text


def thermometry_columns(entry: dict) -> list[str]:
    """``LR x AP x SI`` and equivalent diameter (mm) of a region's thermometry basis (``-`` without it)."""
    th = entry.get("thermometry")
    if not th:
        return ["-", "-"]
    return [f"{th['lr_mm']:.1f} x {th['ap_mm']:.1f} x {th['si_mm']:.1f}", f"{th['equivalent_diameter_mm']:.2f}"]


def _region_rows(entries: list, level_key: str, unit: str) -> list[str]:
    sided = any("side" in e for e in entries)
    head = (["side"] if sided else []) + [unit, "corresponds to", "LR mm", "AP mm", "SI mm", "diameter mm",
                                          "on thermometry: LR x AP x SI mm", "on thermometry: diameter mm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        row = ([e.get("side") or ""] if sided else []) + [
            f"{e[level_key]:g}", e.get("corresponds_to", "-"), _f(e.get("lr_mm"), 2), _f(e.get("ap_mm"), 2),
            _f(e.get("si_mm"), 2), _f(e.get("equivalent_diameter_mm"), 2), *thermometry_columns(e)]
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
            lines += [f"Uncertainty band of the {lesion['threshold_cem43']:g} CEM43 lesion"
                      + (f" ({lesion['side']})" if lesion.get("side") else "") + ": "
                      + band_text(lesion["uncertainty"]) + ".", ""]
    calibration = report.get("calibration")
    if calibration:
        u = calibration.get("uncertainty") or {}
        lines += ["## Calibration on measured thermometry", "",
                  "| parameter | fitted | +/- (1 SD) |", "|---|---|---|",
                  f"| heating efficiency | {calibration['heating_efficiency']:.2f} | {_f(u.get('heating_efficiency'), 2)} |",
                  f"| focal spread | {calibration['focal_spread']:.2f} | {_f(u.get('focal_spread'), 2)} |",
                  f"| spot offset RAS mm | {_vec(calibration['offset_ras_mm'])} | {_vec(u.get('offset_ras_mm'))} |",
                  "", f"Fit residual {calibration['residual_c']:.2f} C RMS; fitted: "
                  + ", ".join(calibration.get("fitted", [])) + ".", ""]
    prediction = report.get("prediction")
    if prediction:
        lines += ["## Treatment predicted with the calibrated model", "",
                  f"Calibrated focus {_vec(prediction['focus_ras_mm'])} RAS mm; steering offset back on target "
                  f"{_vec(prediction['steering_offset_ras_mm'])} RAS mm ({_vec(prediction['steering_offset_acpc_mm'])} "
                  "along the grid axes: AC-PC mm on a scan).", "",
                  "| # | stage | power W | energy J | peak C |", "|---|---|---|---|---|"]
        for s in prediction["sonications"]:
            lines.append(f"| {s['index']} | {s['stage']} | {s['power_w']:.4g} | {s['energy_j']:.4g} | "
                         f"{s['peak_temperature_c']:.1f} |")
        lines += ["", "Predicted lesions (before steering; steering moves them unchanged onto the target):", ""]
        lines += _region_rows(prediction["lesions"], "threshold_cem43", "CEM43") + [""]
        for lesion in prediction["lesions"]:
            if "uncertainty" in lesion:
                lines += [f"Uncertainty band of the calibrated {lesion['threshold_cem43']:g} CEM43 lesion: "
                          + band_text(lesion["uncertainty"]) + ".", ""]
    bands = report.get("uncertainty") or []
    if bands:
        names = ", ".join(p["name"] for p in bands[0].get("parameters", []))
        lines += [f"Band: {bands[0]['samples']} samples ({bands[0]['structural_samples']} protocol runs) over {names}; "
                  "5-95 % of the model's parameter spread, not of model-structure error.", ""]
    return lines
