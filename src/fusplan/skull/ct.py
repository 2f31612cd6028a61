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
from typing import Callable

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..errors import FusplanInputError
from ..io import voxel_to_world

#: HU at or below which a voxel is air (Kranion's air test).
AIR_HU = -500.0
#: Lowest bone HU a head CT must reach somewhere (cortical bone is > 1000 HU).
MIN_BONE_HU = 700.0
#: A head CT always has air (around -1000 HU) or at least fat/water below this.
MAX_LOWEST_HU = -200.0


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
    return FusplanInputError(f"{path}: {reason}")


def check_hounsfield(data: np.ndarray, name: str) -> None:
    """Refuse a volume that is not a head CT in Hounsfield units.

    Raises
    ------
    FusplanInputError
        If nothing is below -200 HU (no air: an MR or a non-HU image) or nothing reaches
        700 HU (no bone), naming ``name``.
    """
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise _refuse(name, "CT has no finite values")
    low, high = float(finite.min()), float(finite.max())
    if low > MAX_LOWEST_HU:
        raise _refuse(name, f"not a CT in Hounsfield units (lowest value {low:.0f}, no air below "
                            f"{MAX_LOWEST_HU:.0f} HU; an MR passed as CT?)")
    if high < MIN_BONE_HU:
        raise _refuse(name, f"no bone in this CT (highest value {high:.0f} HU < {MIN_BONE_HU:.0f} HU)")


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
        Missing file, unreadable file, or not a head CT in HU (one line naming the file).
    """
    path = Path(path)
    if not path.exists():
        raise _refuse(path, "no such CT file or folder")
    if path.is_dir():
        data, affine = _read_dicom_series(path)
    else:
        try:
            image = nib.load(str(path))
            data = np.asarray(image.dataobj, dtype=np.float32)
            affine = np.asarray(image.affine, dtype=float)
        except Exception as error:  # nibabel raises many types for a bad file
            raise _refuse(path, f"cannot read CT ({error.__class__.__name__}: {error})") from None
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise _refuse(path, f"CT must be 3D, got shape {data.shape}")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise _refuse(path, "CT affine is singular or not finite")
    check_hounsfield(data, str(path))
    return SkullCT(data=np.ascontiguousarray(data, dtype=np.float32), affine=affine, source="ct",
                   skin_threshold_hu=-200.0, path=path)


def _read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Stack one DICOM series: slices sorted along the slice normal, HU via rescale, RAS affine.

    DICOM patient coordinates are LPS; the returned affine is RAS (x and y negated).
    """
    import pydicom

    slices = []
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(str(file), stop_before_pixels=False)
        except Exception:
            continue  # not a DICOM file (e.g. a DICOMDIR index or a text note)
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            slices.append(ds)
    if not slices:
        raise _refuse(folder, "no DICOM image slices found in this folder")
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in slices}
    if len(series) > 1:
        raise _refuse(folder, f"folder holds {len(series)} DICOM series; give a folder with one")
    if len(slices) < 2:
        raise _refuse(folder, "a CT series needs at least 2 slices")
    orientation = np.array(slices[0].ImageOrientationPatient, dtype=float)
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))
    positions = np.array([ds.ImagePositionPatient for ds in slices], dtype=float)
    gaps = np.diff(positions @ normal)
    if np.any(gaps <= 1e-3) or np.ptp(gaps) > 0.01 * np.mean(gaps) + 1e-3:
        raise _refuse(folder, "DICOM slices are duplicated or unevenly spaced")
    row_mm, col_mm = (float(v) for v in slices[0].PixelSpacing)  # (between rows, between columns)
    volume = np.stack([
        ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1.0))
        + float(getattr(ds, "RescaleIntercept", 0.0))
        for ds in slices
    ], axis=-1)  # (rows, columns, slices)
    # voxel (r, c, s) -> LPS: position_0 + c * col_mm * row_dir + r * row_mm * col_dir + s * step
    step = (positions[-1] - positions[0]) / (len(slices) - 1)
    lps = np.eye(4)
    lps[:3, 0] = col * row_mm
    lps[:3, 1] = row * col_mm
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    return volume, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


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
