"""The planning grid: a regular box of voxels placed in world RAS mm.

Every solver in fusplan (acoustic field, bioheat, dose, lesion) works on a
:class:`Grid`. Its ``affine`` maps voxel indices to world RAS millimetres, as in
NIfTI, so a grid may be rotated (for instance aligned with the AC-PC frame) and
results never leave a module as voxel indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.affines import apply_affine


@dataclass(frozen=True)
class Grid:
    """A regular 3D grid of cubic voxels.

    Parameters
    ----------
    shape : tuple of int
        Number of voxels along each grid axis.
    spacing_mm : float
        Edge length of a voxel in mm.
    affine : (4, 4) ndarray
        Voxel index -> world RAS mm. Its 3x3 block is ``spacing_mm`` times a
        rotation; its columns are the directions of the grid axes in the world.
    """

    shape: tuple[int, int, int]
    spacing_mm: float
    affine: np.ndarray

    @classmethod
    def centred(
        cls,
        centre_mm,
        extent_mm: float = 40.0,
        spacing_mm: float = 0.5,
        axes=None,
    ) -> Grid:
        """A cubic box of side ``extent_mm`` whose central voxel is at ``centre_mm``.

        Parameters
        ----------
        centre_mm : array_like, shape (3,)
            World RAS mm of the central voxel.
        extent_mm, spacing_mm : float
            Side of the box and voxel size in mm. The number of voxels per axis is
            odd, so one voxel sits exactly on the centre.
        axes : (3, 3) array_like, optional
            Columns are the unit directions (world RAS) of the grid axes; default
            identity (grid axes = R, A, S). Must be a proper rotation.
        """
        if spacing_mm <= 0 or extent_mm <= 0:
            raise ValueError("spacing_mm and extent_mm must be positive")
        n = 2 * int(round(extent_mm / (2 * spacing_mm))) + 1
        rotation = np.eye(3) if axes is None else np.asarray(axes, dtype=float)
        if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0:
            raise ValueError("axes must be a proper rotation matrix (columns orthonormal, det +1)")
        affine = np.eye(4)
        affine[:3, :3] = rotation * spacing_mm
        centre_index = np.full(3, (n - 1) / 2)
        affine[:3, 3] = np.asarray(centre_mm, dtype=float) - affine[:3, :3] @ centre_index
        return cls((n, n, n), float(spacing_mm), affine)

    @property
    def axes(self) -> np.ndarray:
        """Unit direction (world RAS) of each grid axis, as columns."""
        return self.affine[:3, :3] / self.spacing_mm

    @property
    def centre_mm(self) -> np.ndarray:
        """World RAS mm of the grid centre."""
        return self.index_to_world((np.asarray(self.shape) - 1) / 2)

    def index_to_world(self, index) -> np.ndarray:
        """Map voxel indices ``(..., 3)`` to world RAS mm ``(..., 3)``."""
        return apply_affine(self.affine, np.asarray(index, dtype=float))

    def world_to_index(self, world_mm) -> np.ndarray:
        """Map world RAS mm ``(..., 3)`` to (fractional) voxel indices ``(..., 3)``."""
        return apply_affine(np.linalg.inv(self.affine), np.asarray(world_mm, dtype=float))

    def world_coordinates(self) -> np.ndarray:
        """World RAS mm of every voxel centre, shape ``shape + (3,)``."""
        index = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), axis=-1)
        return self.index_to_world(index)

    def local_coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open (broadcastable) coordinates in mm along each grid axis, centred on the grid centre."""
        return tuple(
            ((np.arange(n) - (n - 1) / 2) * self.spacing_mm).reshape([-1 if a == i else 1 for a in range(3)])
            for i, n in enumerate(self.shape)
        )
