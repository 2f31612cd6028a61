"""The batch summary: one row per run (column -> text), ``summary.csv``, typed values for JSON.

Rows come from the written report, read back as typed records
(:meth:`fusplan.timeline.Timeline.from_report`, :func:`fusplan.results.regions_from_report`),
so a resumed run gives the very same row; they
carry no timings, so the same batch gives a byte-identical ``summary.csv``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence

from .. import formatting as fmt
from ..io import atomic_output
from ..results import regions_from_report
from ..timeline import Timeline
from .inputs import value_text
from .runs import RunSpec

BASE_COLUMNS = (
    "run_id", "scan", "side", "protocol", "parameters", "status", "error",
    "target", "target_r_mm", "target_a_mm", "target_s_mm", "acpc_x_mm", "acpc_y_mm", "acpc_z_mm",
    "peak_temperature_c", "thermometry_peak_c", "sonication_peaks_c", "total_energy_j",
)
#: Columns that hold text even when they look like numbers.
TEXT_COLUMNS = ("run_id", "scan", "side", "protocol", "parameters", "status", "error", "target")
_LESION_FIELDS = (("lr_mm", "lr_mm"), ("ap_mm", "ap_mm"), ("si_mm", "si_mm"),
                  ("volume_mm3", "volume_mm3"), ("diameter_mm", "equivalent_diameter_mm"))


def summary_row(doc: Mapping) -> dict:
    """Summary row (column -> text) of one run from its JSON report (with its ``run`` block)."""
    run = doc["run"]
    row = {
        "run_id": run["run_id"], "scan": run["scan"], "side": run["side"] or "", "protocol": run["protocol"],
        "parameters": ";".join(f"{k}={value_text(v)}" for k, v in sorted(run["overrides"].items())),
        "status": "ok", "error": "",
    }
    for key, value in sorted(run["overrides"].items()):
        row[f"param:{key}"] = value_text(value)
    targets = [t for t in doc.get("targets") or [] if t.get("side") in (run["side"], None)]
    if targets:
        found = targets[0]
        row["target"] = found.get("name", "")
        for column, value in zip(("target_r_mm", "target_a_mm", "target_s_mm"), found["ras_mm"]):
            row[column] = _number(value, 2)
        for column, value in zip(("acpc_x_mm", "acpc_y_mm", "acpc_z_mm"), found["acpc_mm"]):
            row[column] = _number(value, 2)
    sonications = Timeline.from_report(doc, run["side"]).sonications if doc.get("sonications") else ()
    if sonications:
        row["peak_temperature_c"] = _number(max(s.peak_temperature_c for s in sonications), 2)
        measured = [s.thermometry_peak_c for s in sonications if s.thermometry_peak_c is not None]
        row["thermometry_peak_c"] = _number(max(measured), 2) if measured else ""
        row["sonication_peaks_c"] = ";".join(_number(s.peak_temperature_c, 2) for s in sonications)
        row["total_energy_j"] = _number(sum(s.energy_j or 0.0 for s in sonications), 1)
    for region in regions_from_report(doc, run["side"]):
        prefix = f"lesion{region.threshold_cem43:g}"
        for name, key in _LESION_FIELDS:
            row[f"{prefix}_{name}"] = _number(getattr(region.lesion, key), 3)
    return row


def error_row(spec: RunSpec, message: str) -> dict:
    """Summary row of a failed run."""
    row = {"run_id": spec.run_id, "scan": spec.scan, "side": spec.side or "", "protocol": spec.protocol,
           "parameters": spec.parameters, "status": "error", "error": message}
    for key, value in spec.overrides:
        row[f"param:{key}"] = value_text(value)
    return row


def row_values(row: Mapping[str, str]) -> dict:
    """A summary row with numbers as numbers (for ``batch --json``).

    Number columns become floats (``None`` when empty), ``sonication_peaks_c`` a
    list of floats, ``param:*`` their parsed JSON value; text columns stay text.
    """
    values = {}
    for column, text in row.items():
        if column in TEXT_COLUMNS:
            values[column] = text
        elif column.startswith("param:"):
            try:
                values[column] = json.loads(text)
            except ValueError:
                values[column] = text
        elif column == "sonication_peaks_c":
            values[column] = [float(v) for v in text.split(";")] if text else []
        else:
            values[column] = float(text) if text != "" else None
    return values


def write_summary(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Write summary rows as CSV (atomically), columns in a fixed order.

    Columns: the run description, the target, the peaks, one ``param:<key>``
    column per override key, and ``lesion<threshold>_{lr,ap,si,volume,diameter}``
    per CEM43 threshold (ascending). Rows are sorted by scan, side, protocol,
    then parameter values (numbers numerically) and run id.
    """
    params = sorted({c for r in rows for c in r if c.startswith("param:")})
    lesion_columns = sorted({c for r in rows for c in r if c.startswith("lesion")}, key=_lesion_column_order)
    columns = [*BASE_COLUMNS, *params, *lesion_columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in sort_rows(rows):
        writer.writerow({c: row.get(c, "") for c in columns})
    path = Path(path)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")
    return path


def sort_rows(rows: Iterable[Mapping]) -> list:
    """Rows in summary order (deterministic, numbers compared as numbers)."""
    def key(row):
        params = tuple((k, _sort_value(v)) for k, v in sorted(row.items()) if k.startswith("param:"))
        return (row.get("scan", ""), row.get("side", ""), row.get("protocol", ""), params, row["run_id"])
    return sorted(rows, key=key)


def _sort_value(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _lesion_column_order(column: str):
    match = re.match(r"lesion([0-9.eE+-]+)_(\w+)", column)
    names = [n for n, _ in _LESION_FIELDS]
    if match is None:
        return (math.inf, 0, column)
    field_name = match.group(2)
    return (float(match.group(1)), names.index(field_name) if field_name in names else len(names), column)


def _number(value, digits: int) -> str:
    return "" if value is None else fmt.fixed(value, digits)  # no "-0.00"
