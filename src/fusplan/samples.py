"""Derived sample scans that exercise non-trivial geometry.

The bundled Colin27 head is stored RAS on a 1 mm isotropic grid, which hides
orientation bugs. :func:`make_clinical_like` re-samples the same anatomy onto an
oblique, anisotropic grid stored LPS, with a smooth bias field and noise, as a
clinical scan would be. World positions of anatomy are unchanged.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .io import Scan, corners_world_mm, resample, voxel_sizes_mm


def reoriented(scan: Scan, order=(0, 1, 2), flips=(False, False, False)) -> Scan:
    """The same voxels stored with permuted and/or flipped axes (exact, no interpolation).

    Parameters
    ----------
    scan : Scan
    order : sequence of 3 ints
        New storage axis ``i`` is old axis ``order[i]``.
    flips : sequence of 3 bools
        Reverse new storage axis ``i``.

    Returns
    -------
    Scan
        Every voxel keeps its world position: the affine changes with the storage.
    """
    data = np.transpose(scan.data, order)
    affine = scan.affine.copy()
    affine[:, :3] = affine[:, list(order)]
    for axis, flip in enumerate(flips):
        if flip:
            data = np.flip(data, axis)
            affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (data.shape[axis] - 1)
            affine[:3, axis] = -affine[:3, axis]
    return Scan(np.ascontiguousarray(data), affine)


def oblique_lps_affine(
    affine: np.ndarray,
    shape,
    spacing_mm=(1.0, 1.0, 2.0),
    rotation_deg=(12.0, -7.0, 9.0),
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An LPS-stored, rotated grid that covers the field of view of ``(affine, shape)``.

    Parameters
    ----------
    affine, shape
        The source grid.
    spacing_mm : sequence of 3 floats
        Voxel size of the new grid along its storage axes.
    rotation_deg : sequence of 3 floats
        Extrinsic x, y, z rotation (degrees) of the new grid's axes.

    Returns
    -------
    affine : (4, 4) ndarray
    shape : tuple of int
    """
    world_corners = corners_world_mm(affine, shape)
    rotation = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    directions = rotation @ np.diag([-1.0, -1.0, 1.0])  # storage axes run towards L, P, S
    spacing = np.asarray(spacing_mm, dtype=float)
    local = world_corners @ directions  # corner coordinates along the new axes, mm
    low, high = local.min(axis=0), local.max(axis=0)
    new_shape = tuple(int(n) for n in np.ceil((high - low) / spacing) + 1)
    new_affine = np.eye(4)
    new_affine[:3, :3] = directions * spacing
    new_affine[:3, 3] = directions @ low
    return new_affine, new_shape


def make_clinical_like(scan: Scan, seed: int = 0, spacing_mm=(1.0, 1.0, 2.0)) -> Scan:
    """Re-sample a scan as a clinical acquisition would store it.

    Parameters
    ----------
    scan : Scan
        Source scan (any orientation).
    seed : int
        Seed of the noise, so the result is reproducible.
    spacing_mm : sequence of 3 floats
        Voxel size of the new grid.

    Returns
    -------
    Scan
        Oblique grid stored LPS with ``spacing_mm`` voxels, a smooth
        multiplicative bias field (about +/-15 %) and Rician-like noise
        (2 % of the 99th intensity percentile). Anatomy keeps its world position.
    """
    affine, shape = oblique_lps_affine(scan.affine, scan.shape, spacing_mm)
    data = resample(scan.data, scan.affine, shape, affine, order=1, cval=0.0)
    index = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    bias = np.exp(0.10 * index[0] - 0.08 * index[1] + 0.06 * index[2] ** 2 - 0.04 * index[0] * index[2])
    rng = np.random.default_rng(seed)
    sigma = 0.02 * float(np.percentile(scan.data, 99))
    real = data * bias + rng.normal(0.0, sigma, shape)
    imaginary = rng.normal(0.0, sigma, shape)
    noisy = np.hypot(real, imaginary).astype(np.float32)
    assert np.allclose(voxel_sizes_mm(affine), spacing_mm)
    return Scan(data=noisy, affine=affine, path=None, affine_source="array",
                warnings=("derived clinical-like copy",))
