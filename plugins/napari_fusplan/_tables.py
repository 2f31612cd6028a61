"""Qt-free rows of the results tables, from the JSON report (``SimulationResult.to_dict()``)."""
from __future__ import annotations

#: Columns shown first (the ones a reader looks for); the others follow in report order.
FIRST_COLUMNS = ("side", "index", "stage", "threshold_cem43", "volume_mm3", "equivalent_diameter_mm",
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
