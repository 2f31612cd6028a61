"""Qt-free rows of the results tables, from the JSON report (``SimulationResult.to_dict()``)."""
from __future__ import annotations

#: Columns shown first (the ones a reader looks for); the others follow in report order.
FIRST_COLUMNS = ("side", "index", "stage", "threshold_cem43", "max_temperature_c", "corresponds_to", "volume_mm3", "equivalent_diameter_mm",
                 "peak_temperature_c", "power_w", "lr_mm", "ap_mm", "si_mm", "nucleus", "fraction_of_lesion")


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Column names (scalar keys, :data:`FIRST_COLUMNS` first) and formatted cells of JSON rows."""
    seen: list[str] = []
    for row in rows:
        seen.extend(k for k, v in row.items() if k not in seen and not isinstance(v, (dict, list)))
    columns = [c for c in FIRST_COLUMNS if c in seen] + [c for c in seen if c not in FIRST_COLUMNS]
    return columns, [[_fmt(row.get(c)) for c in columns] for row in rows]


def nuclei_rows(document: dict) -> list[dict]:
    """One row per lesion entry and nucleus: side, threshold, nucleus, fractions."""
    rows = []
    for lesion in document.get("lesions", []):
        for nucleus, fractions in (lesion.get("nuclei") or {}).items():
            rows.append({"side": lesion.get("side"), "threshold_cem43": lesion["threshold_cem43"],
                         "nucleus": nucleus, **fractions})
    return rows


def clinical_text(document: dict) -> str:
    """Calibration, steering and uncertainty band of a report in a few plain lines ("" when none)."""
    from fusplan.clinical_summary import band_text

    lines = []
    calibration = document.get("calibration")
    if calibration:
        u = calibration.get("uncertainty") or {}
        lines.append(f"Calibrated on {', '.join(calibration.get('fitted', []))}: heating efficiency "
                     f"{calibration['heating_efficiency']:.2f} +/- {u.get('heating_efficiency') or 0:.2f}, focal spread "
                     f"{calibration['focal_spread']:.2f}, residual {calibration['residual_c']:.2f} C.")
    prediction = document.get("prediction")
    if prediction:
        lines.append("Steering offset back on target (RAS mm): "
                     + ", ".join(f"{v:.1f}" for v in prediction["steering_offset_ras_mm"]) + ".")
    for where, lesions in (("", document.get("lesions", [])), ("calibrated ", (prediction or {}).get("lesions", []))):
        for lesion in lesions:
            if "uncertainty" in lesion:
                side = f" ({lesion['side']})" if lesion.get("side") else ""
                lines.append(f"Band of the {where}{lesion['threshold_cem43']:g} CEM43 lesion{side}, "
                             f"{lesion.get('corresponds_to', '')}: {band_text(lesion['uncertainty'])}.")
    return "\n".join(lines)
