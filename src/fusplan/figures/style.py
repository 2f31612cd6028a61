"""Colours and the pyplot-free figure shared by every fusplan figure."""
from __future__ import annotations

#: Colour of each stage (shading of the focus curve, labels).
STAGE_COLOURS = {"alignment": "#4c9be8", "verification": "#f2b134", "treatment": "#e4572e"}
#: Colours of the dose contours, in threshold order (17, 240 CEM43 by default).
DOSE_COLOURS = ("#00e5ff", "#76ff03", "#ff4081", "#ffffff")
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
