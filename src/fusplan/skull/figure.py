"""Skull QC figure: the element map as the console shows it (entry points on the skull,
coloured by incidence angle and by SDR, inactive elements marked)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import atomic_output
from .model import SkullModel

#: Share of magma used for SDR: its pale-yellow top would vanish on the white panel (SDR near 1 is common).
SDR_COLOURMAP_RANGE = (0.0, 0.8)


def sdr_colourmap():
    """magma up to orange: every SDR, 0 to 1, reads on a white background."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    return ListedColormap(matplotlib.colormaps["magma"](np.linspace(*SDR_COLOURMAP_RANGE, 256)), name="sdr")


def skull_figure(model: SkullModel) -> Figure:
    """Two top views (looking down the superior axis, R to the right, A up) of every element's
    outer-table entry point: left coloured by incidence angle, right by SDR; inactive elements
    are grey crosses; the focus is a star. World RAS mm."""
    figure = Figure(figsize=(11, 5.2), dpi=110)
    FigureCanvasAgg(figure)
    entry = model.trace.entry_ras_mm
    hit = np.all(np.isfinite(entry), axis=1)
    active = model.active & hit
    inactive = ~model.active & hit
    summary = model.to_dict()
    panels = (
        ("incidence angle (deg)", model.trace.incidence_deg, "viridis", (0.0, model.critical_angle_deg)),
        ("SDR (clinical)", model.sdr, sdr_colourmap(), (0.0, 1.0)),
    )
    for k, (label, values, cmap, limits) in enumerate(panels):
        ax = figure.add_subplot(1, 2, k + 1)
        scatter = ax.scatter(entry[active, 0], entry[active, 1], c=values[active], cmap=cmap, vmin=limits[0],
                             vmax=limits[1], s=14, edgecolors="none")
        ax.scatter(entry[inactive, 0], entry[inactive, 1], marker="x", color="0.55", s=14, linewidths=0.8,
                   label=f"inactive ({int((~model.active).sum())})")
        ax.plot(model.focus_ras_mm[0], model.focus_ras_mm[1], marker="*", color="red", markersize=12, label="focus")
        ax.set_aspect("equal")
        ax.set_xlabel("R (mm)")
        ax.set_ylabel("A (mm)")
        ax.set_title(label)
        ax.legend(loc="lower right", fontsize=8)
        figure.colorbar(scatter, ax=ax, shrink=0.8, label=label)
    mean_sdr = "n/a" if summary["sdr"] is None else f"{summary['sdr']:.2f}"
    figure.suptitle(
        f"Skull ({summary['source']}): SDR {mean_sdr}, {summary['active_elements']}/{summary['elements']} active, "
        f"mean incidence {summary['mean_incidence_deg']} deg, thickness {summary['mean_thickness_mm']} mm, "
        f"energy transmission {summary['energy_transmission']}", fontsize=10)
    figure.tight_layout()
    return figure


def save_skull_figure(model: SkullModel, path: str | os.PathLike) -> Path:
    """Write :func:`skull_figure` as PNG atomically."""
    path = Path(path)
    figure = skull_figure(model)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
