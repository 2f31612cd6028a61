"""Qt-free rows of the results tables, from the JSON report (``SimulationResult.to_dict()``)."""
from __future__ import annotations

from typing import NamedTuple

#: Keys that say which row it is (side, sonication, threshold...): the row's label, which stays on
#: screen when the table scrolls sideways.
ROW_KEYS = ("side", "index", "stage", "threshold_cem43", "max_temperature_c", "nucleus")
#: Columns shown first, in this order (the ones a reader looks for); the others follow in report order.
FIRST_COLUMNS = ("equivalent_diameter_mm", "lr_mm", "ap_mm", "si_mm", "volume_mm3", "fraction_of_lesion",
                 "fraction_of_nucleus", "power_w", "peak_temperature_c", "thermometry_peak_c")
#: Keys of long text: listed once per threshold under the table (:attr:`Table.notes`), not as a column
#: (``corresponds_to`` already names its ``source``; the JSON report below has both).
NOTE_KEY, HIDDEN = "corresponds_to", ("corresponds_to", "source")
#: Headers that are not the key's words (the others: :func:`fusplan.formatting.heading`).
HEADERS = {"equivalent_diameter_mm": "Diameter (mm)", "volume_mm3": "Volume (mm³)", "peak_temperature_c": "Peak (°C)",
           "thermometry_peak_c": "MR peak (°C)",
           "fraction_of_lesion": "Of lesion (%)",
           "fraction_of_nucleus": "Of nucleus (%)"}
#: Units of the numbers in row labels.
ROW_UNITS = {"threshold_cem43": "CEM43", "max_temperature_c": "°C"}


class Table(NamedTuple):
    """Header texts (units on a second line), row labels, cell texts and notes of one results table."""

    header: list[str]
    row_labels: list[str]
    cells: list[list[str]]
    notes: list[str] = []


def header_text(key: str) -> str:
    """``"equivalent_diameter_mm"`` -> ``"Diameter\\n(mm)"``, ``"skull_absorbed_power_w"`` ->
    ``"Skull absorbed power\\n(W)"`` (the unit on a second line keeps columns narrow)."""
    from fusplan.formatting import heading

    text = HEADERS.get(key) or heading(key)
    return (text[:1].upper() + text[1:]).replace(" (", "\n(")


def cell_text(key: str, value) -> str:
    """The number as every fusplan text writes it (:func:`fusplan.formatting.value`: one rule per unit)."""
    from fusplan.formatting import value as formatted

    return "" if value is None else formatted(key, value)


def row_label(row: dict) -> str:
    """``"left 17 CEM43"``, ``"left #3 treatment"``, ``"CL"``: the row's keys (:data:`ROW_KEYS`) with units."""
    from fusplan.formatting import value as formatted

    parts = []
    for key in ROW_KEYS:
        value = row.get(key)
        if value is not None:
            text = f"#{value}" if key == "index" else formatted(key, value)
            parts.append(f"{text} {ROW_UNITS[key]}" if key in ROW_UNITS else text)
    return " ".join(parts)


def table(rows: list[dict]) -> Table:
    """Human headers (units in brackets), row labels and evenly formatted cells of JSON report rows.

    The row's keys become its label (:func:`row_label`); sizes come first
    (:data:`FIRST_COLUMNS`); what a threshold corresponds to is a note under the table,
    once per threshold (``"17 CEM43: outer edge of reversible damage (console contour)"``).
    """
    seen: list[str] = []
    for row in rows:
        seen.extend(k for k, v in row.items()
                    if k not in seen and k not in ROW_KEYS + HIDDEN and not isinstance(v, (dict, list)))
    columns = [c for c in FIRST_COLUMNS if c in seen] + [c for c in seen if c not in FIRST_COLUMNS]
    notes = []
    for row in rows:
        if row.get(NOTE_KEY):
            note = f"{row_label({k: v for k, v in row.items() if k != 'side'})}: {row[NOTE_KEY]}"
            notes += [note] if note not in notes else []
    return Table([header_text(c) for c in columns], [row_label(row) for row in rows],
                 [[cell_text(c, row.get(c)) for c in columns] for row in rows], notes)


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
    from fusplan import band_text

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
