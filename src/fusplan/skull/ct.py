"""Head CT input: NIfTI or DICOM series in Hounsfield units, checked, sampled in world RAS mm.

A :class:`SkullCT` is a CT volume plus an optional mapping from the subject's world (the MR
scan's RAS mm) into the CT's world, so that a registered patient CT and the population
template mapped through a nonlinear registration are sampled the same way: every function
downstream asks for HU at subject world points and never sees a voxel index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ..errors import FusplanInputError
from ..io import MAX_VOXELS, read_nifti
from ..spatial import voxel_sizes_mm, voxel_to_world
from ..textfile import display_path
from .dicom import read_dicom_series

#: HU at or below which a voxel is air (Kranion's air test).
AIR_HU = -500.0
#: Lowest bone HU a head CT must reach somewhere (cortical bone is > 1000 HU).
MIN_BONE_HU = 700.0
#: A head CT always has air (around -1000 HU) or at least fat/water below this.
MAX_LOWEST_HU = -200.0
#: Percentile of the non-padding voxels compared with :data:`MAX_LOWEST_HU`: at least 0.1 %
#: of a head CT's field of view is air (around the head, sinuses), one noisy voxel is not.
AIR_PERCENTILE = 0.1
#: Values at or below this are field-of-view padding, not tissue (air is -1000 HU; scanners
#: pad with -2000 or -3024 HU, or their raw equivalents).
PADDING_HU = -1500.0
#: HU above which a voxel belongs to the head (skin, -200 HU, as :attr:`SkullCT.skin_threshold_hu`).
HEAD_HU = -200.0
#: Largest head cross-section in the CT's most superior slice: above it the vertex is cut off.
#: A head (radius of curvature ~90 mm at the vertex) is ~50 cm^2 wide 1 cm below its top and
#: ~200 cm^2 at mid-skull, so a CT whose top slice holds more than this ends below the cap.
MAX_TOP_SLICE_HEAD_MM2 = 5000.0
#: Widest field of view of a head CT along any axis (body CTs reach 500 mm).
MAX_CT_EXTENT_MM = 600.0


@dataclass(frozen=True, eq=False)
class SkullCT:
    """A CT volume in HU that can be sampled at subject world RAS mm.

    Attributes
    ----------
    data : (I, J, K) float32 ndarray
        Hounsfield units.
    affine : (4, 4) ndarray
        CT voxel -> CT world RAS mm.
    source : str
        ``"ct"`` (a patient CT) or ``"population template"``.
    subject_to_ct : callable or None
        Maps subject world mm ``(..., 3)`` to CT world mm; None when the CT already lives
        in subject world (e.g. a CT passed with no MR).
    skin_threshold_hu : float
        HU above which a sample is the head, not the surrounding medium (-200 HU for a
        patient CT in air; 0 for the template, whose background is set to 0).
    path : Path or None
        Where the CT was read from (named in error messages).
    """

    data: np.ndarray
    affine: np.ndarray
    source: str = "ct"
    subject_to_ct: Callable[[np.ndarray], np.ndarray] | None = None
    skin_threshold_hu: float = -200.0
    path: Path | None = None
    _inverse: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_inverse", np.linalg.inv(np.asarray(self.affine, float)))

    @property
    def name(self) -> str:
        """What to call this CT in messages."""
        return str(self.path) if self.path is not None else f"{self.source} CT"

    def sample_hu(self, points_mm: np.ndarray) -> np.ndarray:
        """Trilinear HU at subject world points ``(..., 3)``; outside the CT reads as air (-1000),
        or as the template background (0) for the population template."""
        points = np.asarray(points_mm, dtype=float)
        if self.subject_to_ct is not None:
            points = self.subject_to_ct(points)
        flat = points.reshape(-1, 3)
        index = voxel_to_world(self._inverse, flat)  # the inverse affine, cached: this is the ray-marching loop
        outside = -1000.0 if self.source == "ct" else 0.0
        values = ndimage.map_coordinates(self.data, index.T, order=1, mode="constant", cval=outside)
        return values.reshape(points.shape[:-1])


def _refuse(path, reason: str) -> FusplanInputError:
    return FusplanInputError(f"{display_path(Path(path))}: {reason}")


def check_hounsfield(data: np.ndarray, affine: np.ndarray, name) -> None:
    """Refuse a volume that is not a whole-head CT in Hounsfield units, before any registration.

    Values at or below :data:`PADDING_HU` are field-of-view padding (scanners write -2000
    or -3024 outside the reconstruction circle) and are left out of the air test.

    Raises
    ------
    FusplanInputError
        Naming ``name``: non-finite values; no air below -200 HU in the head's surroundings
        (an MR, or raw scanner units such as HU + 1024 whose air reads about 0); no bone
        above 700 HU; or a head that reaches the top of the CT (the skull cap the array
        faces is not covered).
    """
    if not np.all(np.isfinite(data)):
        raise _refuse(name, f"CT contains {int(np.count_nonzero(~np.isfinite(data)))} NaN or Inf voxels")
    body = data[data > PADDING_HU]
    if body.size == 0:
        raise _refuse(name, f"every CT voxel is at or below {PADDING_HU:.0f} HU (field-of-view padding only)")
    low = float(np.percentile(body, AIR_PERCENTILE))
    high = float(body.max())
    if low > MAX_LOWEST_HU:
        if -100.0 <= low <= 200.0 and high > 2000.0:
            raise _refuse(name, f"values look like raw scanner units, not Hounsfield units (air reads {low:.0f}, "
                                f"bone up to {high:.0f}: HU + 1024?); convert the CT to HU (rescale intercept)")
        raise _refuse(name, f"not a CT in Hounsfield units (lowest value {low:.0f} outside the padding, no air "
                            f"below {MAX_LOWEST_HU:.0f} HU; an MR passed as CT?)")
    if high < MIN_BONE_HU:
        raise _refuse(name, f"no bone in this CT (highest value {high:.0f} HU < {MIN_BONE_HU:.0f} HU)")
    _check_cap_covered(data, affine, name)


def _check_cap_covered(data: np.ndarray, affine: np.ndarray, name) -> None:
    """Refuse a CT whose most superior slice still cuts through the head (the vertex cropped away)."""
    affine = np.asarray(affine, float)
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(directions[2])))
    if abs(directions[2, axis]) < 0.7:
        return  # no storage axis runs head-feet: no slice is "the top"
    top = data.shape[axis] - 1 if directions[2, axis] > 0 else 0
    slab = np.take(data, top, axis=axis)
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    area_mm2 = float(np.count_nonzero(slab > HEAD_HU)) * float(np.prod(np.delete(sizes, axis)))
    if area_mm2 > MAX_TOP_SLICE_HEAD_MM2:
        raise _refuse(name, f"the head reaches the top of the CT ({area_mm2 / 100:.0f} cm^2 of head in its most "
                            "superior slice): the skull cap the array faces is not covered")


def load_ct(path: str | os.PathLike) -> SkullCT:
    """Read a head CT in HU from a NIfTI file or a folder holding one DICOM series.

    Parameters
    ----------
    path : str or PathLike
        ``.nii``/``.nii.gz`` file, or a folder of DICOM slices of one series.

    Returns
    -------
    SkullCT
        With ``source="ct"`` and no subject mapping yet (see
        :func:`fusplan.skull.registration.register_ct_to_mr`).

    Raises
    ------
    FusplanInputError
        One line naming the file (or the folder and the slice): every NIfTI check of
        :func:`fusplan.io.read_nifti` (or the DICOM series checks of
        :func:`fusplan.skull.dicom.read_dicom_series`), a field of view wider than
        :data:`MAX_CT_EXTENT_MM`, then :func:`check_hounsfield`. All of it runs before any
        registration.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise _refuse(path, "no such CT file or folder")
    if path.is_dir():
        data, affine = read_dicom_series(path, max_voxels=MAX_VOXELS)
    else:
        image = read_nifti(path, what="CT")
        data, affine = image.data, image.affine
    extent = voxel_sizes_mm(affine) * np.asarray(data.shape)
    if extent.max() > MAX_CT_EXTENT_MM:
        raise _refuse(path, f"CT field of view {' x '.join(f'{e:.0f}' for e in extent)} mm is wider than "
                            f"{MAX_CT_EXTENT_MM:.0f} mm: not a head CT (wrong voxel size?)")
    check_hounsfield(data, affine, path)
    return SkullCT(data=np.ascontiguousarray(data, dtype=np.float32), affine=affine, source="ct",
                   skin_threshold_hu=-200.0, path=path)


def ct_from_array(data: np.ndarray, affine: np.ndarray, *, source: str = "ct",
                  skin_threshold_hu: float = -200.0) -> SkullCT:
    """A :class:`SkullCT` built in memory (tests, synthetic skulls); not checked for HU."""
    return SkullCT(data=np.ascontiguousarray(data, dtype=np.float32), affine=np.asarray(affine, float),
                   source=source, skin_threshold_hu=skin_threshold_hu)


def resample_to_grid(ct: SkullCT, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """HU of ``ct`` on a subject grid (voxel -> subject world ``affine``), e.g. to save the
    subject-space (pseudo-)CT as NIfTI."""
    index = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    world = index @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]
    return ct.sample_hu(world).reshape(shape).astype(np.float32)


__all__ = ["SkullCT", "load_ct", "ct_from_array", "check_hounsfield", "resample_to_grid"]
