"""Synthetic skull CTs with a designed HU profile, the oracles of the skull tests and benchmark.

A spherical shell or a flat slab of bone in water-like tissue whose HU is a piecewise-linear
function of depth, so thickness, SDR, incidence angles and transmission are known in closed
form (see tests/test_skull_*.py and benchmarks/bench_skull.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ct import SkullCT, ct_from_array


@dataclass(frozen=True)
class ShellProfile:
    """HU against depth below the outer bone surface (mm; negative: outside the bone).

    Default: soft tissue 40 HU, outer table 1600 HU, diploe 600 HU, inner table 1400 HU,
    brain 35 HU, each table and the diploe ``plateau_mm`` wide with ``ramp_mm`` ramps, so
    the clinical SDR is ``diploe_hu / outer_hu``.
    """

    soft_tissue_hu: float = 40.0
    outer_hu: float = 1600.0
    diploe_hu: float = 600.0
    inner_hu: float = 1400.0
    brain_hu: float = 35.0
    plateau_mm: float = 2.5
    ramp_mm: float = 0.75
    scalp_mm: float = 6.0

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Depths (mm) and HU of the profile's corners."""
        p, r = self.plateau_mm, self.ramp_mm
        depth = np.cumsum([-r / 2, r, p, r, p, r, p, r])
        hu = [self.soft_tissue_hu, self.outer_hu, self.outer_hu, self.diploe_hu, self.diploe_hu,
              self.inner_hu, self.inner_hu, self.brain_hu]
        return depth, np.asarray(hu, float)

    def hu_at(self, depth_mm) -> np.ndarray:
        """HU at depth below the outer bone surface."""
        depth, hu = self.knots()
        return np.interp(depth_mm, depth, hu)

    def crossings_mm(self, threshold_hu: float = 700.0) -> tuple[float, float]:
        """Depths where the profile first rises to and last falls from ``threshold_hu``."""
        fine = np.linspace(-5, 40, 450001)
        above = np.nonzero(self.hu_at(fine) >= threshold_hu)[0]
        return float(fine[above[0]]), float(fine[above[-1]])

    def mean_bone_hu(self, threshold_hu: float = 700.0) -> float:
        """Mean HU between the two threshold crossings (the ray tracer's path mean)."""
        first, last = self.crossings_mm(threshold_hu)
        fine = np.linspace(first, last, 20001)
        return float(self.hu_at(fine).mean())


def shell_ct(profile: ShellProfile = ShellProfile(), outer_radius_mm: float = 70.0, centre_mm=(0.0, 0.0, 0.0),
             spacing_mm: float = 0.5, min_z_mm: float = -20.0, affine_rotation: np.ndarray | None = None,
             air_pocket: tuple | None = None) -> SkullCT:
    """A spherical skull shell in a CT (air outside the scalp), RAS storage unless rotated.

    Parameters
    ----------
    profile : ShellProfile
    outer_radius_mm : float
        Radius of the outer bone surface (depth 0 of the profile).
    centre_mm : (3,) array_like
        Shell centre, world RAS mm.
    spacing_mm : float
    min_z_mm : float
        Lowest world z (relative to the centre) covered: the cap the array sees.
    affine_rotation : (3, 3) ndarray, optional
        Storage axes as columns (e.g. LPS, permuted or oblique); the world content is the same.
    air_pocket : (centre (3,), radius_mm), optional
        A ball of air (-1000 HU), world RAS mm.
    """
    centre = np.asarray(centre_mm, float)
    extent = outer_radius_mm + profile.scalp_mm + 3.0
    rotation = np.eye(3) if affine_rotation is None else np.asarray(affine_rotation, float)
    half = extent  # a cube of this half-width about the centre holds the sphere in any rotation
    n = int(np.ceil(2 * half / spacing_mm)) + 1
    axis = np.arange(n) * spacing_mm - half
    shape = [n, n, n]
    z_index = slice(None)
    if affine_rotation is None:
        keep = axis >= min_z_mm
        z_index = keep
        shape[2] = int(keep.sum())
    affine = np.eye(4)
    affine[:3, :3] = rotation * spacing_mm
    offset = np.array([-half, -half, axis[z_index][0] if affine_rotation is None else -half])
    affine[:3, 3] = centre + rotation @ offset
    i, j, k = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), np.arange(shape[2]), indexing="ij",
                          sparse=True)
    local = [affine[r, 0] * i + affine[r, 1] * j + affine[r, 2] * k + affine[r, 3] - centre[r] for r in range(3)]
    radius = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2)
    data = profile.hu_at(outer_radius_mm - radius).astype(np.float32)
    data[radius > outer_radius_mm + profile.scalp_mm] = -1000.0
    if air_pocket is not None:
        pocket_centre, pocket_radius = np.asarray(air_pocket[0], float), float(air_pocket[1])
        d2 = sum((local[r] + centre[r] - pocket_centre[r]) ** 2 for r in range(3))
        data[d2 <= pocket_radius**2] = -1000.0
    return ct_from_array(data, affine)


def slab_ct(hu: float, thickness_mm: float, near_face_z_mm: float, half_width_mm: float = 100.0,
            spacing_xy_mm: float = 2.0, spacing_z_mm: float = 0.5, margin_mm: float = 5.0) -> SkullCT:
    """A flat bone layer of uniform ``hu`` in water (0 HU) between ``z = near_face_z_mm`` and
    ``near_face_z_mm + thickness_mm``, ``2 half_width_mm`` wide. Each face is a one-voxel
    linear ramp centred on it, so a threshold of ``hu / 2`` crosses exactly at the faces."""
    nxy = int(round(2 * half_width_mm / spacing_xy_mm)) + 1
    z0 = near_face_z_mm - margin_mm
    nz = int(round((thickness_mm + 2 * margin_mm) / spacing_z_mm)) + 1
    z = z0 + np.arange(nz) * spacing_z_mm
    inside = np.clip(np.minimum(z - near_face_z_mm, near_face_z_mm + thickness_mm - z) / spacing_z_mm + 0.5, 0, 1)
    data = np.broadcast_to((inside * hu).astype(np.float32), (nxy, nxy, nz)).copy()
    affine = np.diag([spacing_xy_mm, spacing_xy_mm, spacing_z_mm, 1.0])
    affine[:3, 3] = [-half_width_mm, -half_width_mm, z0]
    return ct_from_array(data, affine, skin_threshold_hu=-200.0)
