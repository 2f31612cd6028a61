"""The timeline of a protocol: sonication windows and the focus peaks within them.

Plain functions over sonication records (mappings with ``index``, ``stage``,
``duration_s`` and ``cooling_s``, as in the JSON report) and a focus curve
(``time_s``, ``temperature_c``). Used by the planner's result, the figures and the
front ends, so every part of fusplan names the same moments the same way.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def sonication_windows(sonications: Sequence[Mapping]) -> list[dict]:
    """Start, end of sonication and end of cooling of every sonication, in s.

    Sonications follow each other: sonication ``i`` starts when the cooling of
    sonication ``i - 1`` ends, the first at 0 s. Each entry is the record plus
    ``start_s``, ``on_end_s`` and ``end_s``.
    """
    windows, start = [], 0.0
    for entry in sonications:
        on_end = start + float(entry["duration_s"])
        end = on_end + float(entry.get("cooling_s") or 0.0)
        windows.append({**entry, "start_s": start, "on_end_s": on_end, "end_s": end})
        start = end
    return windows


def sonication_peaks(time_s, temperature_c, windows: Sequence[Mapping]) -> list[dict]:
    """Hottest focus moment of every sonication (its heating and cooling).

    Returns one entry per window with samples inside it:
    ``{"index", "stage", "time_s", "temperature_c"}``.
    """
    time_s = np.asarray(time_s, dtype=float)
    temperature_c = np.asarray(temperature_c, dtype=float)
    peaks = []
    for window in windows:
        inside = (time_s >= window["start_s"]) & (time_s <= window["end_s"])
        if inside.any():
            k = np.flatnonzero(inside)[np.argmax(temperature_c[inside])]
            peaks.append({"index": window["index"], "stage": window["stage"], "time_s": float(time_s[k]),
                          "temperature_c": float(temperature_c[k])})
    return peaks


def stage_peaks(time_s, temperature_c, windows: Sequence[Mapping]) -> list[dict]:
    """Hottest focus moment of each stage, in time order.

    Returns one entry per stage present: ``{"stage", "time_s", "temperature_c",
    "sonication"}`` (``sonication`` is the index of the sonication it belongs to;
    the earliest one if two are equally hot).
    """
    best: dict[str, dict] = {}
    for peak in sonication_peaks(time_s, temperature_c, windows):
        known = best.get(peak["stage"])
        if known is None or peak["temperature_c"] > known["temperature_c"]:
            best[peak["stage"]] = {"stage": peak["stage"], "time_s": peak["time_s"],
                                   "temperature_c": peak["temperature_c"], "sonication": peak["index"]}
    return sorted(best.values(), key=lambda p: p["time_s"])
