"""Slice figures: the lesion (peak temperature and dose) and each stage's isotherms."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..grid import Grid
from ..thresholds import threshold_styles
from .planes import PLANES, background_limits, field_planes, label_plane_axes, panel_extent, scan_planes
from .style import OVERLAY_RISE_C, dose_legend, draw_dose_contours, new_figure


def lesion_figure(grid: Grid, peak_temperature_c: np.ndarray, dose_cem43: np.ndarray,
                  thresholds_cem43: Sequence[float], *, scan=None, title: str = ""):
    """Three orthogonal planes through the target: peak temperature and dose contours.

    With a ``scan`` (any orientation, resampled in world coordinates onto each
    plane) it is the grey background and the peak temperature is overlaid where
    it rises at least :data:`OVERLAY_RISE_C`; without one the peak temperature
    fills the planes.
    Axes carry direction letters and mm from the target; the colour bar is the
    peak temperature in °C; each dose threshold is drawn as :mod:`fusplan.thresholds`
    says (:func:`~fusplan.thresholds.threshold_styles`). Returns the matplotlib Figure
    (no pyplot).
    """
    peak_planes = field_planes(peak_temperature_c, grid)
    dose_planes = field_planes(dose_cem43, grid)
    half_width_mm = (max(grid.shape) - 1) / 2 * grid.spacing_mm
    background = None if scan is None else scan_planes(scan.data, scan.affine, grid, half_width_mm)
    baseline_c = float(np.min(peak_temperature_c))
    top_c = max(float(np.max(peak_temperature_c)), baseline_c + 1.0)
    styles = threshold_styles(thresholds_cem43)
    figure = new_figure((13, 4.8))
    axes = figure.subplots(1, 3)
    image = None
    for ax, plane in zip(axes, PLANES):
        peak = peak_planes[plane.name]
        extent = panel_extent(peak, grid.spacing_mm)
        if background is None:
            image = ax.imshow(peak.T, origin="lower", cmap="inferno", vmin=baseline_c, vmax=top_c, extent=extent)
        else:
            low, high = background_limits(background)
            ax.imshow(background[plane.name].T, origin="lower", cmap="gray", vmin=low, vmax=high, extent=extent)
            floor_c = baseline_c + OVERLAY_RISE_C
            image = ax.imshow(np.ma.masked_less(peak, floor_c).T, origin="lower", cmap="YlOrRd", alpha=0.8,
                              vmin=floor_c, vmax=max(top_c, floor_c + 1.0), extent=extent)
        centres = [extent[0] + grid.spacing_mm / 2, extent[1] - grid.spacing_mm / 2,
                   extent[2] + grid.spacing_mm / 2, extent[3] - grid.spacing_mm / 2]
        draw_dose_contours(ax, dose_planes[plane.name].T, styles, centres)
        ax.set_title(plane.name)
        label_plane_axes(ax, plane)
    figure.colorbar(image, ax=axes, shrink=0.85, label="peak temperature (°C)")
    dose_legend(axes[0], styles, title="thermal dose (CEM43 min)", loc="upper right", fontsize=8, title_fontsize=8)
    figure.suptitle(title)
    return figure


def isotherm_levels(peak_c: float, baseline_c: float = 37.0) -> list[float]:
    """Isotherms worth drawing below ``peak_c``: 39, 41, 43, 46, 50, 54, 58, 62 C."""
    return [t for t in (39.0, 41.0, 43.0, 46.0, 50.0, 54.0, 58.0, 62.0) if baseline_c < t < peak_c]


def stage_slices_figure(
    snapshots: Sequence[Mapping],
    grid: Grid,
    thresholds_cem43: Sequence[float],
    *,
    background: Mapping[str, np.ndarray] | None = None,
    half_width_mm: float = 12.0,
    title: str = "",
    path: str | os.PathLike | None = None,
):
    """Isotherms and isodose contours over the MRI at each stage's peak.

    Parameters
    ----------
    snapshots : sequence of mapping
        One row each: ``label`` (text), ``temperature_c`` and ``dose_cem43`` (3D
        arrays on ``grid``: the field at that moment and the dose accumulated so far).
    grid : Grid
        The planning grid (its centre is the target).
    thresholds_cem43 : sequence of float
        Dose contours to draw (the protocol's; 17, 100, 200 and 240 CEM43 by default).
    background : mapping plane name -> 2D array, optional
        The MRI on the three planes (:func:`scan_planes` with the same
        ``half_width_mm`` and the grid's spacing); default a dark background.
    half_width_mm : float
        Half the side of the field of view of each panel.
    title : str
    path : path-like, optional
        Also save the figure (PNG, 110 dpi).
    """
    import matplotlib

    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm

    peak_max = max(float(np.max(s["temperature_c"])) for s in snapshots)
    levels = isotherm_levels(peak_max)
    from matplotlib.colors import ListedColormap

    styles = threshold_styles(thresholds_cem43)
    # plasma without its yellow end, which would be confused with the bright dose contours
    cmap = ListedColormap(matplotlib.colormaps["plasma"](np.linspace(0.0, 0.82, 256)), name="isotherms")
    norm = BoundaryNorm(levels + [levels[-1] + 4] if levels else [37, 38], cmap.N) if levels else None
    rows = len(snapshots)
    figure = new_figure((10.5, 3.3 * rows + 0.6))
    axes = np.atleast_2d(figure.subplots(rows, 3))
    limits = background_limits(background) if background else None
    for r, snapshot in enumerate(snapshots):
        temperature = field_planes(snapshot["temperature_c"], grid, half_width_mm)
        dose = field_planes(snapshot["dose_cem43"], grid, half_width_mm)
        for c, plane in enumerate(PLANES):
            ax = axes[r, c]
            extent = panel_extent(temperature[plane.name], grid.spacing_mm)
            if background is not None:
                image = background[plane.name]
                ax.imshow(image.T, origin="lower", cmap="gray", vmin=limits[0], vmax=limits[1],
                          extent=panel_extent(image, grid.spacing_mm), interpolation="bilinear")
            else:
                ax.set_facecolor("black")
            section = temperature[plane.name].T
            drawn = [t for t in levels if section.max() >= t]
            if drawn:
                ax.contour(section, levels=drawn, cmap=cmap, norm=norm, extent=extent, linewidths=1.1)
            draw_dose_contours(ax, dose[plane.name].T, styles, extent)
            ax.plot(0, 0, "+", color="white", ms=5, mew=0.8)
            ax.set_xlim(-half_width_mm, half_width_mm)
            ax.set_ylim(-half_width_mm, half_width_mm)
            ax.set_aspect("equal")
            label_plane_axes(ax, plane, xlabel=r == rows - 1, ylabel=True)  # columns differ: P-A, I-S, I-S
            if r == 0:
                ax.set_title(plane.name, fontsize=11)
        axes[r, 0].text(0.03, 0.9, snapshot["label"], transform=axes[r, 0].transAxes, ha="left", va="top",
                        fontsize=8, color="white", bbox=dict(facecolor="black", alpha=0.6, lw=0, pad=2))
    if levels:
        mappable = ScalarMappable(norm=norm, cmap=cmap)
        bar = figure.colorbar(mappable, ax=axes, shrink=0.6, pad=0.01)
        bar.set_label("isotherms (°C)")
        bar.set_ticks(levels)
    dose_legend(figure, styles, title="thermal dose so far (CEM43 min)", loc="lower center", ncol=min(len(styles), 4),
                fontsize=9, title_fontsize=9, bbox_to_anchor=(0.5, 0.0))
    figure.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    figure.suptitle(title or "Isotherms and thermal dose at the peak of each stage", fontsize=12)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
