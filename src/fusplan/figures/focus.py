"""The focus over time: its temperature curve, accumulated dose, stages and their peaks.

Drawn from a :class:`fusplan.timeline.Timeline` (``result.timeline(side)``, or
:meth:`~fusplan.timeline.Timeline.from_report` for a saved report).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .. import formatting as fmt
from ..thresholds import threshold_styles
from ..timeline import Timeline
from .style import STAGE_COLOURS, new_figure

#: Thresholds drawn on the dose panel when none are given (the console's two contours).
CONSOLE_THRESHOLDS_CEM43 = (17.0, 240.0)


def focus_figure(timeline: Timeline, thresholds_cem43: Sequence[float] = CONSOLE_THRESHOLDS_CEM43, *,
                 title: str = "focus temperature and thermal dose", path: str | os.PathLike | None = None,
                 annotate_peaks: bool = True):
    """Temperature of the focus against time (top panel) and its accumulated dose (bottom panel, log axis).

    Stages are shaded and sonication peaks annotated on the temperature panel; the
    dose thresholds are drawn only on the dose panel, in CEM43 min, in their
    :mod:`fusplan.thresholds` colours, so no dose line sits on the temperature scale.

    Parameters
    ----------
    timeline : Timeline
        One side's sonications and focus curve.
    thresholds_cem43 : sequence of float
        Dose thresholds drawn on the dose panel (the protocol's).
    title : str
    path : path-like, optional
        Also save the figure there (PNG, 120 dpi).
    annotate_peaks : bool
        Write each sonication's peak (true and on thermometry) and power above it; a
        small panel (the napari dock) leaves them out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    time_s, temperature_c = timeline.focus.time_s, timeline.focus.temperature_c
    dose = timeline.focus.dose_cem43
    styles = threshold_styles(thresholds_cem43)
    figure = new_figure((11, 6.4))
    ax, dose_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.6))
    shaded = set()
    peaks = {p.sonication: p for p in timeline.sonication_peaks()}
    for window in timeline.windows:
        stage, record = window.stage, window.record
        for panel in (ax, dose_ax):
            panel.axvspan(window.start_s, window.on_end_s, color=STAGE_COLOURS.get(stage, "grey"), alpha=0.25, lw=0,
                          label=f"{stage} sonication" if panel is ax and stage not in shaded else None)
        shaded.add(stage)
        peak = peaks.get(window.index)
        if annotate_peaks and peak is not None:
            text = f"#{window.index}  {fmt.temperature(peak.temperature_c)} °C"
            if record.thermometry_peak_c is not None:
                text += f"\nMRT {fmt.temperature(record.thermometry_peak_c)} °C"
            if record.power_w:
                text += f"\n{fmt.power(record.power_w)} W"
            ax.annotate(text, (peak.time_s, peak.temperature_c), xytext=(0, 6), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8, color="black")
    ax.plot(time_s, temperature_c, color="black", lw=1.4, label="focus temperature")
    baseline = float(temperature_c[0]) if temperature_c.size else 37.0
    ax.axhline(43.0, color="grey", lw=0.8, ls=":")
    ax.text(time_s[-1], 43.0, "43 °C ", va="top", ha="right", fontsize=8, color="grey")
    ax.set_xlim(time_s[0] - 0.025 * (time_s[-1] - time_s[0]), time_s[-1])  # room for the first label
    ax.set_ylim(baseline - 1, max(temperature_c.max() + 7, baseline + 10))
    dose_ax.set_xlabel("time since the first sonication (s)"
                       + ("   (MRT: what MR thermometry shows)" if timeline.has_thermometry else ""))
    ax.set_ylabel("temperature at the focus (°C)")
    ax.grid(alpha=0.3)
    floor = 1e-3
    dose_ax.plot(time_s, np.maximum(dose, floor), color="#6a1b9a", lw=1.6, label="accumulated dose at the focus")
    dose_ax.set_yscale("log")
    top = max(float(dose.max()), styles[-1].threshold_cem43 if styles else 1.0)
    dose_ax.set_ylim(floor, 10 ** np.ceil(np.log10(top) + 0.5))
    dose_ax.set_ylabel("thermal dose\n(CEM43 min, log)")
    dose_ax.grid(alpha=0.3)
    for style in styles:  # thresholds darkened: the bright contour colours are made for dark images
        dose_ax.axhline(style.threshold_cem43, color=_on_white(style.colour), lw=1.2, ls="--",
                        label=style.label)
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = dose_ax.get_legend_handles_labels()
    figure.legend(handles + more_handles, labels + more_labels, loc="outside lower center", fontsize=8,
                  ncol=min(4, len(handles) + len(more_handles)), frameon=False)
    ax.set_title(title)
    ax.tick_params(labelbottom=False)
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def _on_white(colour: str) -> str:
    """A bright contour colour darkened to read on a white panel (white becomes black)."""
    from matplotlib.colors import to_hex, to_rgb

    return to_hex([0.55 * c for c in to_rgb(colour)])
