"""Skull density ratio (SDR) the way the clinical system computes it (after Kranion).

Per element: HU sampled at 60 points 0.5 mm apart along the unrefracted element -> focus
ray, from 10 mm outside the outer-table entry; from the first sample >= 700 HU walk inward
while HU rises (outer-table peak), from the last sample >= 700 HU walk outward while HU rises
(inner-table peak); ``SDR_ray = max(min between the peaks, 0) / outer peak``. The element's
SDR is the mean over a 5 x 5 grid of parallel rays 2.25 mm apart (physics.md, Kranion's
"what Insightec does" shader). All 25 rays of an element start 10 mm outside the central
ray's outer-table entry. BabelBrain's SDR (min / max along the transducer axis) differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ct import SkullCT


@dataclass(frozen=True)
class SdrSettings:
    """The clinical SDR recipe's constants (physics.md)."""

    samples: int = 60
    sample_spacing_mm: float = 0.5
    start_outside_mm: float = 10.0
    threshold_hu: float = 700.0
    grid: int = 5
    grid_spacing_mm: float = 2.25


def perpendicular_frames(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``(N, 3)`` each, orthogonal to each direction and to each other."""
    helper = np.where(np.abs(directions[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    u = np.cross(directions, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u, np.cross(directions, u)


def ray_sdr(values: np.ndarray, threshold_hu: float = 700.0) -> np.ndarray:
    """Clinical SDR of each row of HU samples ``(R, S)`` ordered outside -> inside; NaN without bone."""
    values = np.asarray(values, float)
    count, length = values.shape
    rows = np.arange(count)
    above = values >= threshold_hu
    has_bone = above.any(axis=1)
    outer = np.where(has_bone, above.argmax(axis=1), 0)
    inner = np.where(has_bone, length - 1 - above[:, ::-1].argmax(axis=1), 0)
    for _ in range(length):  # walk inward to the outer-table peak
        step = (outer + 1 < length) & (values[rows, np.minimum(outer + 1, length - 1)] >= values[rows, outer])
        if not step.any():
            break
        outer = outer + step
    for _ in range(length):  # walk outward to the inner-table peak
        step = (inner - 1 >= 0) & (values[rows, np.maximum(inner - 1, 0)] >= values[rows, inner])
        if not step.any():
            break
        inner = inner - step
    low, high = np.minimum(outer, inner), np.maximum(outer, inner)
    index = np.arange(length)[None, :]
    between = (index >= low[:, None]) & (index <= high[:, None])
    minimum = np.clip(np.min(np.where(between, values, np.inf), axis=1), 0.0, None)
    peak = values[rows, outer]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(has_bone & (peak > 0), minimum / peak, np.nan)


def element_sdr(ct: SkullCT, element_centres_mm: np.ndarray, directions: np.ndarray, entry_distance_mm: np.ndarray,
                settings: SdrSettings = SdrSettings()) -> np.ndarray:
    """Per-element clinical SDR (NaN where no ray of the element meets bone).

    Parameters
    ----------
    ct : SkullCT
    element_centres_mm, directions : (N, 3) ndarray
        Element centres (world RAS mm) and unit directions to the focus.
    entry_distance_mm : (N,) ndarray
        Distance from each element to its central ray's outer-table entry (NaN: no skull).
    settings : SdrSettings
    """
    u, v = perpendicular_frames(directions)
    half = (settings.grid - 1) / 2
    grid = (np.arange(settings.grid) - half) * settings.grid_spacing_mm
    gu, gv = np.meshgrid(grid, grid, indexing="ij")
    offsets = gu.reshape(1, -1, 1) * u[:, None, :] + gv.reshape(1, -1, 1) * v[:, None, :]  # (N, G, 3)
    start_distance = np.nan_to_num(entry_distance_mm) - settings.start_outside_mm
    starts = element_centres_mm[:, None, :] + offsets + (start_distance[:, None] * directions)[:, None, :]
    s = np.arange(settings.samples) * settings.sample_spacing_mm
    points = starts[:, :, None, :] + s[None, None, :, None] * directions[:, None, None, :]
    values = ct.sample_hu(points).reshape(-1, settings.samples)
    per_ray = ray_sdr(values, settings.threshold_hu).reshape(len(directions), -1)
    valid = np.isfinite(per_ray)
    with np.errstate(invalid="ignore"):
        sdr = np.where(valid.any(axis=1), np.nansum(per_ray, axis=1) / np.maximum(valid.sum(axis=1), 1), np.nan)
    return np.where(np.isfinite(entry_distance_mm), sdr, np.nan)
