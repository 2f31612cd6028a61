"""Colours, dose-contour legends and the pyplot-free figure shared by every fusplan figure.

Dose thresholds are drawn as :mod:`fusplan.thresholds` says (colour, line width and
name of each threshold, for any number of them).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..thresholds import LEGEND_FACE, ThresholdStyle

#: Colour of each stage (shading of the focus curve, labels).
STAGE_COLOURS = {"alignment": "#4c9be8", "verification": "#f2b134", "treatment": "#e4572e"}
#: Smallest temperature rise (°C) drawn over a scan in :func:`lesion_figure`.
OVERLAY_RISE_C = 3.0


def new_figure(figsize: tuple[float, float]):
    """A constrained-layout matplotlib Figure on the Agg canvas (no pyplot, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def draw_dose_contours(ax, dose_plane, styles: Sequence[ThresholdStyle], extent) -> None:
    """Contour a dose plane (indexed ``[v, u]``) at every threshold it reaches, outermost widest."""
    for style in styles:
        if dose_plane.max() >= style.threshold_cem43:
            ax.contour(dose_plane, levels=[style.threshold_cem43], colors=[style.colour], extent=extent,
                       linewidths=style.linewidth, zorder=style.zorder)


def dose_legend(target, styles: Sequence[ThresholdStyle], *, title: str | None = None, **kwargs):
    """A legend of the dose contours on a dark background, where the bright line colours read.

    ``target`` is an Axes or a Figure; ``kwargs`` go to its ``legend`` (location, columns...).
    """
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=s.colour, lw=s.linewidth) for s in styles]
    legend = target.legend(handles, [s.label for s in styles], title=title, facecolor=LEGEND_FACE,
                           edgecolor=LEGEND_FACE, labelcolor="white", framealpha=1.0, **kwargs)
    if title:
        legend.get_title().set_color("white")
    return legend
