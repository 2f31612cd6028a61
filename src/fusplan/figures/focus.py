"""The focus over time: its temperature curve, accumulated dose, stages and their peaks.

Every function takes ``SimulationResult.to_dict()`` (the JSON report) and a side.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from .. import timeline
from .style import STAGE_COLOURS, new_figure


def sonication_windows(report: Mapping, side: str | None = None) -> list[dict]:
    """Start, end of sonication and end of cooling of ``side``'s sonications, in s.

    See :func:`fusplan.timeline.sonication_windows`.
    """
    return timeline.sonication_windows(_side_sonications(report, side))


def _side_sonications(report: Mapping, side: str | None) -> list[dict]:
    entries = list(report.get("sonications", []))
    if side is not None and any("side" in e for e in entries):
        entries = [e for e in entries if e.get("side") == side]
    return entries


def focus_curve(report: Mapping, side: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(time_s, temperature_c)`` of the hottest point for ``side`` (or the first side)."""
    by_side = report.get("focus_by_side") or {}
    focus = by_side.get(side) if side is not None and side in by_side else report["focus"]
    return np.asarray(focus["time_s"], dtype=float), np.asarray(focus["temperature_c"], dtype=float)


def cumulative_dose(time_s: np.ndarray, temperature_c: np.ndarray) -> np.ndarray:
    """CEM43 accumulated up to every sample of a temperature history (exact per step)."""
    from ..dose import cem43_step

    steps = cem43_step(temperature_c[:-1], temperature_c[1:], np.diff(time_s))
    return np.concatenate([[0.0], np.cumsum(steps)])


def stage_peaks(report: Mapping, side: str | None = None) -> list[dict]:
    """Time and temperature of the hottest moment of each stage at the focus.

    Returns one entry per stage present, in time order:
    ``{"stage", "time_s", "temperature_c", "sonication"}`` (see
    :func:`fusplan.timeline.stage_peaks`).
    """
    return timeline.stage_peaks(*focus_curve(report, side), sonication_windows(report, side))


def stage_at(report: Mapping, time_s: float, side: str | None = None) -> str:
    """Human label of what happens at ``time_s``: ``"treatment 2 - sonicating"``, ``"cooling"``..."""
    windows = sonication_windows(report, side)
    counts: dict[str, int] = {}
    for window in windows:
        counts[window["stage"]] = counts.get(window["stage"], 0) + 1
        number = f" {counts[window['stage']]}" if sum(w["stage"] == window["stage"] for w in windows) > 1 else ""
        if window["start_s"] <= time_s <= window["on_end_s"]:  # the peak is at the end of sonicating
            return f"{window['stage']}{number}: sonicating"
        if window["on_end_s"] <= time_s < window["end_s"] or (window is windows[-1] and time_s >= window["end_s"]):
            return f"{window['stage']}{number}: cooling"
    return "before the first sonication"


def focus_figure(report: Mapping, *, side: str | None = None, title: str | None = None,
                 path: str | os.PathLike | None = None, annotate_peaks: bool = True):
    """Temperature of the focus against time (top) and its accumulated dose (bottom, log axis).

    Stages are shaded and sonication peaks annotated on the temperature panel; the
    dose thresholds are drawn only on the dose panel, in CEM43 min, so no dose
    line sits on the temperature scale.

    Parameters
    ----------
    report : mapping
        ``SimulationResult.to_dict()``.
    side : str, optional
        Which side's focus to draw (default the report's first side).
    title : str, optional
    path : path-like, optional
        Also save the figure there (PNG, 120 dpi).
    annotate_peaks : bool
        Write each sonication's peak (true and on thermometry) and power above it; a
        small panel (the napari dock) leaves them out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    time_s, temperature_c = focus_curve(report, side)
    dose = cumulative_dose(time_s, temperature_c)
    thresholds = sorted({float(lesion["threshold_cem43"]) for lesion in report.get("lesions", [])}) or [17.0, 240.0]
    figure = new_figure((11, 6.4))
    ax, dose_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.6))
    shaded = set()
    for window in sonication_windows(report, side):
        stage = window["stage"]
        ax.axvspan(window["start_s"], window["on_end_s"], color=STAGE_COLOURS.get(stage, "grey"), alpha=0.25,
                   lw=0, label=f"{stage} sonication" if stage not in shaded else None)
        dose_ax.axvspan(window["start_s"], window["on_end_s"], color=STAGE_COLOURS.get(stage, "grey"), alpha=0.25,
                        lw=0)
        shaded.add(stage)
        inside = (time_s >= window["start_s"]) & (time_s <= window["end_s"])
        if annotate_peaks and inside.any():
            k = np.flatnonzero(inside)[np.argmax(temperature_c[inside])]
            power = window.get("power_w")
            text = f"{temperature_c[k]:.1f} °C"
            if window.get("thermometry_peak_c") is not None:
                text += f"\nMRT {window['thermometry_peak_c']:.1f} °C"
            if power:
                text += f"\n{power:.3g} W"
            ax.annotate(text, (time_s[k], temperature_c[k]), xytext=(0, 6), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8, color="black")
    ax.plot(time_s, temperature_c, color="black", lw=1.4, label="focus temperature")
    baseline = float(temperature_c[0]) if temperature_c.size else 37.0
    ax.axhline(43.0, color="grey", lw=0.8, ls=":")
    ax.text(time_s[-1], 43.0, "43 °C ", va="top", ha="right", fontsize=8, color="grey")
    ax.set_xlim(time_s[0] - 0.025 * (time_s[-1] - time_s[0]), time_s[-1])  # room for the first label
    ax.set_ylim(baseline - 1, max(temperature_c.max() + 6, baseline + 10))
    dose_ax.set_xlabel("time since the first sonication (s)" + ("   (MRT: what MR thermometry shows)"
                       if any(w.get("thermometry_peak_c") is not None for w in sonication_windows(report, side))
                       else ""))
    ax.set_ylabel("temperature at the focus (°C)")
    ax.grid(alpha=0.3)
    floor = 1e-3
    dose_ax.plot(time_s, np.maximum(dose, floor), color="#6a1b9a", lw=1.6, label="accumulated dose at the focus")
    dose_ax.set_yscale("log")
    top = max(float(dose.max()), thresholds[-1])
    dose_ax.set_ylim(floor, 10 ** np.ceil(np.log10(top) + 0.5))
    dose_ax.set_ylabel("thermal dose\n(CEM43 min, log)")
    dose_ax.grid(alpha=0.3)
    for threshold in thresholds:
        dose_ax.axhline(threshold, color="#6a1b9a", lw=0.8, ls=":")
    # one label for all threshold lines: 100, 200 and 240 CEM43 are too close on a log axis to label apart
    dose_ax.text(0.005, 0.96, "dotted: " + " / ".join(f"{t:g}" for t in thresholds) + " CEM43 min",
                 transform=dose_ax.transAxes, va="top", ha="left", fontsize=8, color="#6a1b9a")
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = dose_ax.get_legend_handles_labels()
    figure.legend(handles + more_handles, labels + more_labels, loc="outside lower center", fontsize=8,
                  ncol=len(handles) + len(more_handles), frameon=False)
    ax.set_title(title or f"{report.get('protocol', 'protocol')}: focus temperature and thermal dose")
    ax.tick_params(labelbottom=False)
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
