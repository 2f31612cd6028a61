"""Synthetic and derived sample scans: non-trivial geometry and known warps.

The bundled Colin27 head is stored RAS on a 1 mm isotropic grid, which hides
orientation bugs. :func:`make_clinical_like` re-samples the same anatomy onto an
oblique, anisotropic grid stored LPS, with a smooth bias field and noise, as a
clinical scan would be (world positions of anatomy unchanged);
:func:`reoriented` re-stores a scan with permuted/flipped axes. For validating
registration, :func:`synthetic_subject` warps an atlas template by a known
random affine and smooth displacement (:class:`SyntheticSubject` knows the truth).
Both noisy generators share one bias-field and one Rician-noise model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .atlas import Atlas, load_atlas
from .errors import FusplanInputError
from .io import Scan
from .spatial import corners_world_mm, resample, voxel_sizes_mm, voxel_to_world, world_to_voxel
from .template import normalise_intensity
from .vocabulary import DEFAULT_ATLAS

#: Storage axes of an LPS grid, as world directions (columns).
_LPS = np.diag([-1.0, -1.0, 1.0])


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
    ornt = np.empty((3, 2))  # nibabel's orientation transform: old axis -> (new axis, flip)
    for new, (old, flip) in enumerate(zip(order, flips)):
        ornt[old] = (new, -1 if flip else 1)
    data = apply_orientation(scan.data, ornt)
    affine = scan.affine @ inv_ornt_aff(ornt, scan.shape)
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
    rotation = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    return _grid_covering(corners_world_mm(affine, shape), rotation @ _LPS, spacing_mm)


def _grid_covering(points_mm: np.ndarray, directions: np.ndarray, spacing_mm, margin_mm: float = 0.0):
    """``(affine, shape)`` of the grid with storage axes ``directions`` covering ``points_mm`` (+ margin)."""
    spacing = np.asarray(spacing_mm, dtype=float)
    local = np.asarray(points_mm, dtype=float) @ directions  # coordinates along the new axes, mm
    low, high = local.min(axis=0) - margin_mm, local.max(axis=0) + margin_mm
    shape = tuple(int(n) for n in np.ceil((high - low) / spacing) + 1)
    affine = np.eye(4)
    affine[:3, :3] = directions * spacing
    affine[:3, 3] = directions @ low
    return affine, shape


def _bias_field(shape, coefficients) -> np.ndarray:
    """Smooth multiplicative bias ``exp(a x + b y + c z^2 + d x z)`` over [-1, 1]^3 storage coordinates."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    a, b, c, d = coefficients
    return np.exp(a * x + b * y + c * z**2 + d * x * z)


def _rician(data: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``data`` plus complex Gaussian noise of standard deviation ``sigma`` (float32)."""
    real = data + rng.normal(0.0, sigma, data.shape)
    return np.hypot(real, rng.normal(0.0, sigma, data.shape)).astype(np.float32)


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
    bias = _bias_field(shape, (0.10, -0.08, 0.06, -0.04))
    sigma = 0.02 * float(np.percentile(scan.data, 99))
    noisy = _rician(data * bias, sigma, np.random.default_rng(seed))
    assert np.allclose(voxel_sizes_mm(affine), spacing_mm)
    return Scan(data=noisy, affine=affine, path=None, affine_source="array",
                warnings=("derived clinical-like copy",))


@dataclass(frozen=True, eq=False)
class SyntheticSubject:
    """A head made from the atlas template with a known warp (see :func:`synthetic_subject`).

    Attributes
    ----------
    scan : Scan
        The synthetic scan.
    affine_mm : (4, 4) ndarray
        Known affine part, template world -> subject world.
    field_affine : (4, 4) ndarray
        Voxel -> template world mm of the displacement grid.
    displacement_mm : ndarray, shape (..., 3)
        Known displacement ``d``: a subject point ``u`` shows the template at
        ``m + d(m)`` with ``m = inv(affine_mm) @ u``.
    """

    scan: Scan
    affine_mm: np.ndarray
    field_affine: np.ndarray
    displacement_mm: np.ndarray

    def _d(self, points: np.ndarray) -> np.ndarray:
        index = world_to_voxel(self.field_affine, points).reshape(-1, 3).T
        out = [ndimage.map_coordinates(self.displacement_mm[..., k], index, order=1, mode="nearest") for k in range(3)]
        return np.stack(out, axis=-1).reshape(points.shape)

    def template_to_subject(self, points_mm) -> np.ndarray:
        """True subject world mm of template points ``(..., 3)`` (fixed-point inversion, < 1e-4 mm)."""
        target = np.asarray(points_mm, dtype=float)
        moved = target.copy()
        for _ in range(100):
            updated = target - self._d(moved)
            if np.abs(updated - moved).max() < 1e-6:
                break
            moved = updated
        return voxel_to_world(self.affine_mm, moved)


def t2_like(template: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Remap a T1 template to a T2-like contrast (CSF bright, WM darker than GM).

    Inside the (smoothed) brain mask normalised intensities 0.15 (CSF), 0.55 (GM)
    and 0.85 (WM) go to 1.0, 0.6 and 0.35; outside, scalp and skull keep half
    their T1 intensity.
    """
    image = normalise_intensity(template, brain)
    inside = np.interp(image, [0.0, 0.15, 0.55, 0.85, 1.0], [0.0, 1.0, 0.6, 0.35, 0.3])
    weight = ndimage.gaussian_filter(brain.astype(np.float32), 1.0)
    return (weight * inside + (1 - weight) * 0.5 * image).astype(np.float32)


def synthetic_subject(
    atlas: str | Atlas = DEFAULT_ATLAS,
    seed: int = 0,
    *,
    contrast: str = "T1",
    warp_mm: float = 3.0,
    rotation_deg: float = 10.0,
    translation_mm: float = 20.0,
    scale_range: tuple[float, float] = (0.92, 1.08),
    spacing_mm=(1.0, 1.0, 1.0),
    bias: float = 0.15,
    noise: float = 0.02,
) -> SyntheticSubject:
    """A synthetic head: the atlas template under a known random affine and smooth warp.

    Parameters
    ----------
    atlas : str or Atlas
    seed : int
        Seed of every random choice.
    contrast : {"T1", "T2"}
        ``T2`` remaps the template with :func:`t2_like`.
    warp_mm : float
        Largest displacement of the smooth nonlinear warp (correlation length ~20 mm).
    rotation_deg, translation_mm : float
        Largest rotation about each axis and translation along each axis.
    scale_range : (float, float)
        Range of the per-axis scale factors.
    spacing_mm : sequence of 3 floats
        Voxel size of the synthetic scan (stored LPS).
    bias, noise : float
        Amplitude of the multiplicative bias field and Rician-like noise level
        (fraction of the 99th percentile).
    """
    atlas = load_atlas(atlas) if isinstance(atlas, str) else atlas
    rng = np.random.default_rng(seed)
    raw, template_affine = atlas.load_template()
    brain = atlas.template_brain_mask()
    image = normalise_intensity(raw, brain)
    if contrast.upper() == "T2":
        image = t2_like(raw, brain)
    elif contrast.upper() != "T1":
        raise FusplanInputError(f"synthetic contrast must be 'T1' or 'T2', not {contrast!r}")

    rotation = Rotation.from_euler("xyz", rng.uniform(-rotation_deg, rotation_deg, 3), degrees=True).as_matrix()
    scales = rng.uniform(*scale_range, 3)
    shear = np.eye(3) + np.triu(rng.uniform(-0.03, 0.03, (3, 3)), 1)
    affine_mm = np.eye(4)
    affine_mm[:3, :3] = rotation @ shear @ np.diag(scales)
    affine_mm[:3, 3] = rng.uniform(-translation_mm, translation_mm, 3)

    # smooth warp on a 4 mm grid over the template
    field_step = 4.0
    world = corners_world_mm(template_affine, raw.shape)
    low, high = world.min(axis=0) - 10, world.max(axis=0) + 10
    field_shape = tuple(int(n) for n in np.ceil((high - low) / field_step) + 1)
    field_affine = np.diag([field_step] * 3 + [1.0])
    field_affine[:3, 3] = low
    noise_field = rng.normal(size=field_shape + (3,))
    smooth = np.stack([ndimage.gaussian_filter(noise_field[..., k], 20.0 / field_step / 2) for k in range(3)], axis=-1)
    displacement = (smooth * (warp_mm / np.abs(smooth).max())).astype(np.float64)

    # subject grid: LPS storage covering the moved head
    scan_affine, shape = _grid_covering(voxel_to_world(affine_mm, world), _LPS, spacing_mm, margin_mm=5.0)

    subject = SyntheticSubject(None, affine_mm, field_affine, displacement)
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), axis=-1)
    moved = voxel_to_world(np.linalg.inv(affine_mm) @ scan_affine, index)
    del index
    template_points = moved + subject._d(moved)
    del moved
    source = world_to_voxel(template_affine, template_points).reshape(-1, 3).T
    del template_points
    data = ndimage.map_coordinates(image, source, order=1, mode="constant", cval=0.0).reshape(shape)
    field_bias = _bias_field(shape, bias * rng.uniform(-1, 1, 4))
    noisy = _rician(data * field_bias, noise * float(np.percentile(data, 99)), rng)
    scan = Scan(data=noisy, affine=scan_affine, warnings=(f"synthetic {contrast} subject, seed {seed}",))
    return replace(subject, scan=scan)
