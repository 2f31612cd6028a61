"""World <-> voxel geometry and resampling of images given as an array plus an affine.

Every image in fusplan is an array plus an affine that maps voxel indices to world RAS
millimetres (the NIfTI convention). These helpers never return voxel indices across a
module boundary without their affine, so a scan stored RAS, LAS, LPS, permuted or oblique
gives the same world answers. Reading and writing files is :mod:`fusplan.io`'s job.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["voxel_sizes_mm", "voxel_to_world", "world_to_voxel", "corners_world_mm", "resample"]


def voxel_sizes_mm(affine: np.ndarray) -> np.ndarray:
    """Edge length in mm of a voxel along each storage axis of ``affine``."""
    return np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))


def voxel_to_world(affine: np.ndarray, index) -> np.ndarray:
    """Map voxel indices ``(..., 3)`` to world RAS mm through ``affine``."""
    index = np.asarray(index, dtype=float)
    affine = np.asarray(affine, dtype=float)
    world = index.reshape(-1, 3).dot(affine[:3, :3].T)
    world += affine[:3, 3]  # in place: these arrays hold millions of ray samples
    return world.reshape(index.shape)


def world_to_voxel(affine: np.ndarray, world_mm) -> np.ndarray:
    """Map world RAS mm ``(..., 3)`` to fractional voxel indices of ``affine``."""
    return voxel_to_world(np.linalg.inv(affine), world_mm)


def corners_world_mm(affine: np.ndarray, shape) -> np.ndarray:
    """World RAS mm of the centres of the 8 corner voxels of a grid ``(affine, shape)``, shape (8, 3)."""
    corners = [[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)]
    return voxel_to_world(affine, corners)


def resample(
    data: np.ndarray,
    affine: np.ndarray,
    shape,
    target_affine: np.ndarray,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample an image onto another grid so that world positions line up.

    Parameters
    ----------
    data : ndarray, 3D
        Source image in its storage order.
    affine : (4, 4) ndarray
        Source voxel -> world RAS mm.
    shape : tuple of int
        Shape of the target grid.
    target_affine : (4, 4) ndarray
        Target voxel -> world RAS mm (any orientation, may be oblique).
    order : int
        Spline order: 0 for labels (nearest neighbour), 1 for intensities.
    cval : float
        Value outside the source image.

    Returns
    -------
    ndarray
        Image of ``shape``; voxel ``v`` holds the source value at world point
        ``target_affine @ v``.
    """
    target_to_source = np.linalg.inv(np.asarray(affine, dtype=float)) @ np.asarray(target_affine, dtype=float)
    output_dtype = data.dtype if order == 0 else np.float32
    return ndimage.affine_transform(
        data,
        target_to_source[:3, :3],
        offset=target_to_source[:3, 3],
        output_shape=tuple(int(n) for n in shape),
        order=order,
        mode="constant",
        cval=cval,
        output=output_dtype,
        prefilter=False,
    )
