"""Teaching figures of a planned procedure: focus curve, stage slices, animation.

Every function takes plain data (the JSON report of a simulation, arrays on the
planning :class:`~fusplan.grid.Grid`, planes of a scan resampled in world
coordinates) and returns a matplotlib Figure, or writes a GIF. matplotlib is
imported inside the functions with the Agg backend, so importing this module is
cheap and needs no display.

Plane conventions. Slices are cut through the grid centre (the target) along the
grid axes; in a scan plan these are the subject's AC-PC axes (axis 0 left ->
right, axis 1 posterior -> anterior, axis 2 inferior -> superior), in the
phantom the world RAS axes. Images are drawn in neurological convention (the
subject's right on the right of an axial or coronal slice, anterior on the right
of a sagittal slice) and every axis is labelled with its direction letters and
mm from the target.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import timeline
from .grid import Grid
from .io import resample

#: Colour of each stage (shading of the focus curve, labels).
STAGE_COLOURS = {"alignment": "#4c9be8", "verification": "#f2b134", "treatment": "#e4572e"}
#: Colours of the dose contours, in threshold order (17, 240 CEM43 by default).
DOSE_COLOURS = ("#00e5ff", "#76ff03", "#ff4081", "#ffffff")
#: Smallest temperature rise (°C) drawn over a scan in :func:`lesion_figure`.
OVERLAY_RISE_C = 3.0
#: Direction letters of the negative and positive end of each grid axis.
AXIS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))


@dataclass(frozen=True)
class Plane:
    """One orthogonal plane through the target.

    ``normal`` is the grid axis across the plane; ``u`` and ``v`` the grid axes
    along its horizontal and vertical directions.
    """

    name: str
    normal: int
    u: int
    v: int


PLANES = (Plane("axial", 2, 0, 1), Plane("coronal", 1, 0, 2), Plane("sagittal", 0, 1, 2))


def _pyplot_free_figure(figsize):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


# ----------------------------------------------------------------------- timeline


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
    from .dose import cem43_step

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
                 path: str | os.PathLike | None = None):
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

    Returns
    -------
    matplotlib.figure.Figure
    """
    time_s, temperature_c = focus_curve(report, side)
    dose = cumulative_dose(time_s, temperature_c)
    thresholds = sorted({float(lesion["threshold_cem43"]) for lesion in report.get("lesions", [])}) or [17.0, 240.0]
    figure = _pyplot_free_figure((11, 6.4))
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
        if inside.any():
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
        dose_ax.text(time_s[0], threshold, f" {threshold:g} CEM43 min", va="bottom", ha="left", fontsize=8,
                     color="#6a1b9a")
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = dose_ax.get_legend_handles_labels()
    figure.legend(handles + more_handles, labels + more_labels, loc="outside lower center", fontsize=8,
                  ncol=len(handles) + len(more_handles), frameon=False)
    ax.set_title(title or f"{report.get('protocol', 'protocol')}: focus temperature and thermal dose")
    ax.tick_params(labelbottom=False)
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


# -------------------------------------------------------------------------- planes


def plane_grid(grid: Grid, plane: Plane, half_width_mm: float, spacing_mm: float | None = None
               ) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of a one-voxel-thick slab through ``grid``'s centre.

    The slab has the grid's orientation, spans ``±half_width_mm`` along the plane's
    two axes and is sampled every ``spacing_mm`` (default the grid's).
    """
    spacing = float(spacing_mm or grid.spacing_mm)
    n = 2 * int(round(half_width_mm / spacing)) + 1
    shape = [n, n, n]
    shape[plane.normal] = 1
    axes = grid.axes
    affine = np.eye(4)
    affine[:3, :3] = axes * spacing
    centre_index = (np.asarray(shape) - 1) / 2
    affine[:3, 3] = grid.centre_mm - affine[:3, :3] @ centre_index
    return tuple(shape), affine


def scan_planes(data: np.ndarray, affine: np.ndarray, grid: Grid, half_width_mm: float,
                spacing_mm: float | None = None) -> dict[str, np.ndarray]:
    """A scan resampled (world-consistently) on the three planes through ``grid``'s centre.

    Returns plane name -> 2D array indexed ``[u, v]`` (grid-axis order).
    """
    planes = {}
    for plane in PLANES:
        shape, plane_affine = plane_grid(grid, plane, half_width_mm, spacing_mm)
        slab = resample(np.asarray(data, dtype=np.float32), affine, shape, plane_affine, order=1)
        planes[plane.name] = np.take(slab, 0, axis=plane.normal)
    return planes


def field_planes(volume: np.ndarray, grid: Grid, half_width_mm: float | None = None) -> dict[str, np.ndarray]:
    """The three planes of a field on ``grid`` through its centre, cropped to ``±half_width_mm``."""
    volume = np.asarray(volume)
    centre = [(n - 1) // 2 for n in grid.shape]
    planes = {}
    for plane in PLANES:
        section = np.take(volume, centre[plane.normal], axis=plane.normal)
        if half_width_mm is not None:
            keep = int(round(half_width_mm / grid.spacing_mm))
            cu, cv = centre[plane.u], centre[plane.v]
            section = section[max(cu - keep, 0):cu + keep + 1, max(cv - keep, 0):cv + keep + 1]
        planes[plane.name] = section
    return planes


def _extent(section: np.ndarray, spacing_mm: float) -> tuple[float, float, float, float]:
    hu = (section.shape[0] - 1) / 2 * spacing_mm
    hv = (section.shape[1] - 1) / 2 * spacing_mm
    return (-hu - spacing_mm / 2, hu + spacing_mm / 2, -hv - spacing_mm / 2, hv + spacing_mm / 2)


def label_plane_axes(ax, plane: Plane, *, xlabel: bool = True, ylabel: bool = True) -> None:
    """Label a plane's axes with direction letters (L/R, P/A, I/S) and mm from the target."""
    (u_neg, u_pos), (v_neg, v_pos) = AXIS_LETTERS[plane.u], AXIS_LETTERS[plane.v]
    if xlabel:
        ax.set_xlabel(f"{u_neg} ← mm from target → {u_pos}", fontsize=8)
    if ylabel:
        ax.set_ylabel(f"{v_neg} ← mm → {v_pos}", fontsize=8)
    from matplotlib import patheffects

    style = dict(fontsize=11, fontweight="bold", color="white", transform=ax.transAxes,
                 path_effects=[patheffects.withStroke(linewidth=2.5, foreground="black")])
    ax.text(0.02, 0.5, u_neg, ha="left", va="center", **style)
    ax.text(0.98, 0.5, u_pos, ha="right", va="center", **style)
    ax.text(0.5, 0.02, v_neg, ha="center", va="bottom", **style)
    ax.text(0.5, 0.98, v_pos, ha="center", va="top", **style)
    ax.tick_params(labelsize=7)


def _background_limits(planes: Mapping[str, np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([p.ravel() for p in planes.values()])
    low, high = np.percentile(values, [1, 99.5])
    return float(low), float(high if high > low else low + 1)


def lesion_figure(grid: Grid, peak_temperature_c: np.ndarray, dose_cem43: np.ndarray,
                  thresholds_cem43: Sequence[float], *, scan=None, title: str = ""):
    """Three orthogonal planes through the target: peak temperature and dose contours.

    With a ``scan`` (any orientation, resampled in world coordinates onto each
    plane) it is the grey background and the peak temperature is overlaid where
    it rises at least :data:`OVERLAY_RISE_C`; without one the peak temperature
    fills the planes.
    Axes carry direction letters and mm from the target; the colour bar is the
    peak temperature in °C; each dose threshold is one contour colour
    (:data:`DOSE_COLOURS`). Returns the matplotlib Figure (no pyplot).
    """
    peak_planes = field_planes(peak_temperature_c, grid)
    dose_planes = field_planes(dose_cem43, grid)
    half_width_mm = (max(grid.shape) - 1) / 2 * grid.spacing_mm
    background = None if scan is None else scan_planes(scan.data, scan.affine, grid, half_width_mm)
    baseline_c = float(np.min(peak_temperature_c))
    top_c = max(float(np.max(peak_temperature_c)), baseline_c + 1.0)
    figure = _pyplot_free_figure((13, 4.8))
    axes = figure.subplots(1, 3)
    image = None
    for ax, plane in zip(axes, PLANES):
        peak = peak_planes[plane.name]
        extent = _extent(peak, grid.spacing_mm)
        if background is None:
            image = ax.imshow(peak.T, origin="lower", cmap="inferno", vmin=baseline_c, vmax=top_c, extent=extent)
        else:
            low, high = _background_limits(background)
            ax.imshow(background[plane.name].T, origin="lower", cmap="gray", vmin=low, vmax=high, extent=extent)
            floor_c = baseline_c + OVERLAY_RISE_C
            image = ax.imshow(np.ma.masked_less(peak, floor_c).T, origin="lower", cmap="YlOrRd", alpha=0.8,
                              vmin=floor_c, vmax=max(top_c, floor_c + 1.0), extent=extent)
        centres = [extent[0] + grid.spacing_mm / 2, extent[1] - grid.spacing_mm / 2,
                   extent[2] + grid.spacing_mm / 2, extent[3] - grid.spacing_mm / 2]
        for colour, threshold in zip(DOSE_COLOURS, thresholds_cem43):
            dose = dose_planes[plane.name].T
            if dose.max() >= threshold:
                ax.contour(dose, levels=[threshold], colors=[colour], extent=centres, linewidths=1.4)
            ax.plot([], [], color=colour, label=f"{threshold:g} CEM43 min")
        ax.set_title(plane.name)
        label_plane_axes(ax, plane)
    figure.colorbar(image, ax=axes, shrink=0.85, label="peak temperature (°C)")
    axes[0].legend(loc="upper right", fontsize=8, title="thermal dose", title_fontsize=8)
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
        Dose contours to draw (17 and 240 CEM43 by default in protocols).
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
    from matplotlib.lines import Line2D

    peak_max = max(float(np.max(s["temperature_c"])) for s in snapshots)
    levels = isotherm_levels(peak_max)
    from matplotlib.colors import ListedColormap

    # plasma without its yellow end, which would be confused with the lime 240 CEM43 contour
    cmap = ListedColormap(matplotlib.colormaps["plasma"](np.linspace(0.0, 0.82, 256)), name="isotherms")
    norm = BoundaryNorm(levels + [levels[-1] + 4] if levels else [37, 38], cmap.N) if levels else None
    rows = len(snapshots)
    figure = _pyplot_free_figure((10.5, 3.3 * rows + 0.6))
    axes = np.atleast_2d(figure.subplots(rows, 3))
    limits = _background_limits(background) if background else None
    for r, snapshot in enumerate(snapshots):
        temperature = field_planes(snapshot["temperature_c"], grid, half_width_mm)
        dose = field_planes(snapshot["dose_cem43"], grid, half_width_mm)
        for c, plane in enumerate(PLANES):
            ax = axes[r, c]
            extent = _extent(temperature[plane.name], grid.spacing_mm)
            if background is not None:
                image = background[plane.name]
                ax.imshow(image.T, origin="lower", cmap="gray", vmin=limits[0], vmax=limits[1],
                          extent=_extent(image, grid.spacing_mm), interpolation="bilinear")
            else:
                ax.set_facecolor("black")
            section = temperature[plane.name].T
            drawn = [t for t in levels if section.max() >= t]
            if drawn:
                ax.contour(section, levels=drawn, cmap=cmap, norm=norm, extent=extent, linewidths=1.1)
            for threshold, colour in zip(thresholds_cem43, DOSE_COLOURS):
                plane_dose = dose[plane.name].T
                if plane_dose.max() >= threshold:
                    ax.contour(plane_dose, levels=[threshold], colors=[colour], extent=extent, linewidths=2.0,
                               linestyles="--" if threshold < max(thresholds_cem43) else "-")
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
    handles = [Line2D([], [], color=colour, lw=2, ls="--" if t < max(thresholds_cem43) else "-")
               for t, colour in zip(thresholds_cem43, DOSE_COLOURS)]
    figure.legend(handles, [f"{t:g} CEM43 (dose so far)" for t in thresholds_cem43], loc="lower center",
                  ncol=len(handles), fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.0))
    figure.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    figure.suptitle(title or "Isotherms and thermal dose at the peak of each stage", fontsize=12)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


# ------------------------------------------------------------------------ animation


def write_animation(
    path: str | os.PathLike,
    report: Mapping,
    grid: Grid,
    times_s: Sequence[float],
    temperature_planes: Sequence[Mapping[str, np.ndarray]],
    *,
    background: Mapping[str, np.ndarray] | None = None,
    side: str | None = None,
    half_width_mm: float = 12.0,
    vmax_c: float | None = None,
    frame_ms: int = 120,
    dpi: int = 96,
) -> Path:
    """Write a GIF of the temperature field through the procedure.

    Each frame shows the temperature over the MRI on the three planes (clear at
    38 °C, fading in to opaque at 42 °C), a clock, the current stage, and the
    focus curve with a cursor. One fixed palette serves every frame (no flicker,
    small file).

    Parameters
    ----------
    path : path-like
        Output ``.gif`` (written atomically).
    report : mapping
        ``SimulationResult.to_dict()`` (for the focus curve and stages).
    grid : Grid
    times_s : sequence of float
        Time of each frame.
    temperature_planes : sequence of mapping plane name -> 2D array
        The field on the three planes at each time (:func:`field_planes` with
        ``half_width_mm``).
    background : mapping plane name -> 2D array, optional
        The MRI on the planes.
    vmax_c : float, optional
        Top of the colour scale (default the hottest frame, rounded up).
    frame_ms : int
        Display time of each frame.
    dpi : int
        Resolution: at the default 96 dpi the smallest text (9 pt) is 12 px high.

    Returns
    -------
    Path
    """
    import matplotlib
    from matplotlib.colors import ListedColormap
    from PIL import Image

    from .io import atomic_output

    focus_t, focus_c = focus_curve(report, side)
    hottest = max(float(np.max(p[name])) for p in temperature_planes for name in p)
    vmax = vmax_c or float(np.ceil(max(hottest, 44.0)))
    # inferno without its near-black end, so a barely warm voxel is visible over the MRI
    cmap = ListedColormap(matplotlib.colormaps["inferno"](np.linspace(0.3, 1.0, 256)), name="warm")
    figure = _pyplot_free_figure((9, 4.8))
    spec = figure.add_gridspec(2, 3, height_ratios=(3.0, 1.0))
    plane_axes = [figure.add_subplot(spec[0, c]) for c in range(3)]
    curve_ax = figure.add_subplot(spec[1, :])
    limits = _background_limits(background) if background else None
    images = []
    for ax, plane in zip(plane_axes, PLANES):
        first = temperature_planes[0][plane.name]
        extent = _extent(first, grid.spacing_mm)
        if background is not None:
            ax.imshow(background[plane.name].T, origin="lower", cmap="gray", vmin=limits[0], vmax=limits[1],
                      extent=_extent(background[plane.name], grid.spacing_mm))
        else:
            ax.set_facecolor("black")
        images.append(ax.imshow(first.T, origin="lower", cmap=cmap, vmin=38.0, vmax=vmax, extent=extent,
                                alpha=_opacity(first).T, interpolation="nearest"))
        ax.set_xlim(-half_width_mm, half_width_mm)
        ax.set_ylim(-half_width_mm, half_width_mm)
        ax.set_title(plane.name, fontsize=11)
        label_plane_axes(ax, plane)
        ax.xaxis.label.set_size(9)
        ax.yaxis.label.set_size(9)
        ax.tick_params(labelsize=9)
    bar = figure.colorbar(images[-1], ax=plane_axes, shrink=0.85, pad=0.01)
    bar.set_label("temperature (°C)", fontsize=10)
    bar.ax.tick_params(labelsize=9)
    for window in sonication_windows(report, side):
        curve_ax.axvspan(window["start_s"], window["on_end_s"], color=STAGE_COLOURS.get(window["stage"], "grey"),
                         alpha=0.3, lw=0)
    curve_ax.plot(focus_t, focus_c, color="black", lw=1)
    cursor = curve_ax.axvline(times_s[0], color="#d32f2f", lw=1.5)
    curve_ax.set_xlim(focus_t[0], focus_t[-1])
    curve_ax.set_xlabel("time (s)", fontsize=9)
    curve_ax.set_ylabel("focus (°C)", fontsize=9)
    curve_ax.tick_params(labelsize=9)
    clock = figure.text(0.5, 0.995, "", ha="center", va="top", fontsize=12)
    figure.get_layout_engine().set(rect=(0, 0, 1, 0.95))
    figure.set_dpi(dpi)
    figure.canvas.draw()  # lay out once, then freeze the layout and draw only what moves (blitting)
    figure.set_layout_engine("none")
    for artist in (*images, cursor, clock):
        artist.set_animated(True)
    figure.canvas.draw()
    static = figure.canvas.copy_from_bbox(figure.bbox)

    def render(t, planes):
        for image, plane in zip(images, PLANES):
            image.set_data(planes[plane.name].T)
            image.set_alpha(_opacity(planes[plane.name]).T)
        cursor.set_xdata([t, t])
        clock.set_text(f"t = {int(t // 60)}:{t % 60:04.1f}  |  {stage_at(report, t, side)}  |  "
                       f"hottest {max(float(planes[n].max()) for n in planes):.1f} °C")
        figure.canvas.restore_region(static)
        for artist in (*images, cursor, clock):
            figure.draw_artist(artist)
        return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3])

    # One fixed palette for every frame (fast, no flicker): greys for the MRI and text, the
    # colour map over mid-grey and white (what the overlay looks like), and the curve's colours.
    grey = np.linspace(0, 1, 72)[:, None].repeat(3, axis=1)
    warm = cmap(np.linspace(0, 1, 60))[:, :3]
    blends = [warm * a + g * (1 - a) for a, g in ((1.0, 0.0), (0.6, 0.5), (0.6, 1.0))]
    shading = [np.asarray(matplotlib.colors.to_rgb(c)) * 0.3 + 0.7 for c in STAGE_COLOURS.values()]
    extra = [matplotlib.colors.to_rgb(c) for c in ("#d32f2f", "#1f77b4")]
    colours = np.clip(np.vstack([grey, *blends, shading, extra]), 0, 1)[:256]
    palette = Image.new("P", (1, 1))
    palette.putpalette((colours * 255).round().astype(np.uint8).ravel().tolist())
    frames = [render(t, planes).quantize(palette=palette, dither=Image.Dither.NONE)
              for t, planes in zip(times_s, temperature_planes)]
    figure.clear()
    path = Path(path)
    with atomic_output(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def _opacity(section: np.ndarray, floor_c: float = 38.0, full_c: float = 42.0) -> np.ndarray:
    """Opacity of the temperature overlay: clear below ``floor_c``, 0.9 from ``full_c`` up."""
    return 0.9 * np.clip((np.asarray(section, dtype=float) - floor_c) / (full_c - floor_c), 0.0, 1.0)


def animation_times(report: Mapping, n_frames: int = 90, side: str | None = None) -> np.ndarray:
    """Frame times over the procedure, denser while sonicating than while cooling.

    About 55 % of the frames fall on sonications (which are short but where the
    field changes fast); the rest share the cooling periods. Always includes 0 and
    the end.
    """
    windows = sonication_windows(report, side)
    if not windows:
        return np.linspace(0.0, 1.0, 2)
    on_total = sum(w["on_end_s"] - w["start_s"] for w in windows)
    off_total = sum(w["end_s"] - w["on_end_s"] for w in windows)
    n_on, n_off = int(round(0.55 * n_frames)), n_frames - int(round(0.55 * n_frames))
    times = [0.0]
    for w in windows:
        k_on = max(2, int(round(n_on * (w["on_end_s"] - w["start_s"]) / max(on_total, 1e-9))))
        times.extend(np.linspace(w["start_s"], w["on_end_s"], k_on + 1)[1:])
        if w["end_s"] > w["on_end_s"]:
            k_off = max(1, int(round(n_off * (w["end_s"] - w["on_end_s"]) / max(off_total, 1e-9))))
            # cooling is fast at first: space frames geometrically
            offsets = (w["end_s"] - w["on_end_s"]) * (np.geomspace(1, 11, k_off) - 1) / 10
            times.extend(w["on_end_s"] + offsets[1:] if k_off > 1 else [w["end_s"]])
            times.append(w["end_s"])
    return np.unique(np.round(times, 3))


def focal_figure(q_or_intensity: np.ndarray, grid: Grid, path=None, title: str | None = None):
    """Three orthogonal planes through the peak, in dB, with -3 and -6 dB contours.

    Parameters
    ----------
    q_or_intensity : ndarray of ``grid.shape``
        Heat source or intensity (any non-negative power-like quantity).
    path : path-like, optional
        Save the figure there (PNG/PDF by extension).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    data = np.asarray(q_or_intensity, dtype=float)
    peak = np.unravel_index(np.argmax(data), data.shape)
    db = 10 * np.log10(np.maximum(data / data.max(), 1e-3))
    coords = [((np.arange(n) - (n - 1) / 2) * grid.spacing_mm) for n in grid.shape]
    centre = grid.index_to_world(np.asarray(peak, float))
    names = ("LR (axis 0)", "AP (axis 1)", "SI (axis 2)")
    planes = [(0, 1, db[:, :, peak[2]]), (0, 2, db[:, peak[1], :]), (1, 2, db[peak[0], :, :])]
    fig = Figure(figsize=(12, 4), constrained_layout=True)
    axs = fig.subplots(1, 3)
    for ax, (i, j, img) in zip(axs, planes):
        half = grid.spacing_mm / 2  # imshow extent is voxel edges
        extent = (coords[i][0] - half, coords[i][-1] + half, coords[j][0] - half, coords[j][-1] + half)
        im = ax.imshow(img.T, origin="lower", extent=extent, cmap="inferno", vmin=-30, vmax=0)
        ax.contour(coords[i], coords[j], img.T, levels=[-6, -3], colors=["cyan", "white"], linewidths=1)
        ax.set_xlabel(f"{names[i]}, mm from grid centre")
        ax.set_ylabel(f"{names[j]}, mm from grid centre")
    fig.colorbar(im, ax=axs, label="dB re peak (contours -6 cyan, -3 white)", shrink=0.8)
    fig.suptitle(title or f"Focal intensity, peak at RAS ({centre[0]:.1f}, {centre[1]:.1f}, {centre[2]:.1f}) mm")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
