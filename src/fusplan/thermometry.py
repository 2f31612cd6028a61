"""What MR thermometry would show: temperature averaged over a voxel and a frame.

Clinical PRF thermometry reports, for each voxel (e.g. 1.1 x 1.1 x 3.0 mm, the long
side along the subject's superior-inferior axis) and each frame (e.g. 3.5 s), the mean
temperature over that volume and time. Its peak is lower than the true peak of a
1-2 mm focal spot, and clinicians titrate power on it. fusplan models it as

- a box average over ``voxel_mm`` centred on every grid voxel, oriented with the grid
  axes (in a scan plan the AC-PC axes, so the last size lies along SI), with exact
  partial-volume weights for boxes that are not a whole number of voxels;
- a sliding average over the frame window ``[t - frame_s, t]``. Taking the maximum
  over all window positions makes the result independent of the (unknown) phase of
  the frames relative to the sonication.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["box_kernel_1d", "voxel_average", "frame_average", "DEFAULT_THERMOMETRY", "resolve_thermometry"]

#: Clinical PRF thermometry (voxel mm along LR, AP, SI; frame s) when a protocol gives none:
#: ExAblate 3 T thermometry as in Huang 2018 and the Zurich CLT series (physics.md).
DEFAULT_THERMOMETRY = ((1.1, 1.1, 3.0), 3.5)


def resolve_thermometry(thermometry) -> tuple[tuple[float, float, float], float]:
    """Voxel (mm) and frame (s) of a protocol's ``thermometry`` block, else :data:`DEFAULT_THERMOMETRY`."""
    if thermometry is None:
        return DEFAULT_THERMOMETRY
    return tuple(float(v) for v in thermometry.voxel_mm), float(thermometry.frame_s)


def box_kernel_1d(width_mm: float, spacing_mm: float) -> np.ndarray:
    """Weights of a box of ``width_mm`` centred on a voxel, by overlap with each voxel.

    The kernel is symmetric with an odd number of taps and sums to 1; e.g. 1.1 mm at
    0.5 mm spacing (2.2 voxels) gives ``[0.6, 1, 0.6] / 2.2``.
    """
    if width_mm <= 0 or spacing_mm <= 0:
        raise ValueError("width_mm and spacing_mm must be positive")
    half = width_mm / (2 * spacing_mm)
    m = int(math.ceil(half - 0.5))
    centres = np.arange(-m, m + 1, dtype=float)
    w = np.clip(np.minimum(centres + 0.5, half) - np.maximum(centres - 0.5, -half), 0, None)
    return w / w.sum()


def voxel_average(values: np.ndarray, spacing_mm: float, voxel_mm, first_axis: int = 0) -> np.ndarray:
    """Box average over ``voxel_mm`` along axes ``first_axis .. first_axis + 2``.

    Voxels closer to the array edge than half a box see zeros beyond it: give enough
    margin around the region you read back.
    """
    out = np.asarray(values, dtype=float)
    for axis, width in enumerate(voxel_mm):
        out = ndimage.correlate1d(out, box_kernel_1d(width, spacing_mm), axis=first_axis + axis, mode="constant")
    return out


def frame_average(values: np.ndarray, step_s: float, frame_s: float) -> np.ndarray:
    """Sliding mean over ``[t - frame_s, t]`` of samples ``values`` (time on axis 0).

    ``frame_s`` must be a whole number of uniform steps ``step_s``; the mean is the
    trapezoid integral (exact for T linear between samples). Returns the windows that
    end at samples ``n_w, n_w + 1, ...`` (``n_w = frame_s / step_s``).
    """
    n_w = int(round(frame_s / step_s))
    if n_w < 1 or abs(n_w * step_s - frame_s) > 1e-9 * frame_s:
        raise ValueError("frame_s must be a whole number of steps")
    values = np.asarray(values, dtype=float)
    csum = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(0.5 * (values[1:] + values[:-1]), axis=0)])
    return (csum[n_w:] - csum[:-n_w]) * (step_s / frame_s)
