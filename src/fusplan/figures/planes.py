"""The three orthogonal planes through the target, and how their panels are drawn.

Slices are cut through the grid centre (the target) along the grid axes; in a scan
plan these are the subject's AC-PC axes (axis 0 left -> right, axis 1 posterior ->
anterior, axis 2 inferior -> superior), in the phantom the world RAS axes. Images are
drawn in neurological convention and every axis is labelled with its direction
letters and mm from the target.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping

import numpy as np

from ..grid import Grid
from ..spatial import resample

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


def panel_extent(section: np.ndarray, spacing_mm: float) -> tuple[float, float, float, float]:
    """``imshow`` extent (voxel edges, mm from the target) of a plane section centred on the target."""
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


def background_limits(planes: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """Grey-scale window (1st to 99.5th percentile) of a scan shown on the planes."""
    values = np.concatenate([p.ravel() for p in planes.values()])
    low, high = np.percentile(values, [1, 99.5])
    return float(low), float(high if high > low else low + 1)
