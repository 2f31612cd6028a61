"""A CT's DICOM series: every slice's header checked before any pixel is decoded.

:func:`read_dicom_series` refuses, naming the folder and the slice: a file too large to be a
CT slice or a deflated slice that inflates past that size (read in bounded chunks before
pydicom sees it), a header pydicom cannot parse, a missing or malformed required tag
(:data:`REQUIRED_TAGS`), a slice of another series, size, pixel spacing or orientation, a
series with more voxels than allowed, duplicated or unevenly spaced slices, implausible
voxel sizes, and pixel data that cannot be decoded or has the wrong shape. Files that are not
DICOM (a text note) or hold no image (a DICOMDIR index) are skipped.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FusplanInputError, first_line
from ..io import VOXEL_SIZE_RANGE_MM
from ..textfile import display_path

__all__ = ["REQUIRED_TAGS", "MAX_SLICE_BYTES", "read_dicom_series"]

#: Tags every CT slice must carry to be placed in world space.
REQUIRED_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "PixelData")
#: Largest slice file, and largest inflated deflate-compressed slice, in bytes (a 2048 x 2048
#: slice of 32-bit values is 16 MiB).
MAX_SLICE_BYTES = 64 << 20
#: Tolerances between slices: orientation cosines, relative pixel spacing, relative slice gap.
ORIENTATION_TOLERANCE = 1e-3
SPACING_TOLERANCE = 1e-3
GAP_TOLERANCE = 0.01
#: Largest |HU| a rescaled slice may hold (extended-scale CT reaches ~30 000 HU in metal).
HU_LIMIT = 1e6
_DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class _Slice:
    file: Path
    position: np.ndarray
    orientation: np.ndarray
    spacing: tuple[float, float]
    rows: int
    columns: int
    series: str


def read_dicom_series(folder: Path, *, max_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack one DICOM series: slices sorted along the slice normal, HU via rescale, RAS affine.

    DICOM patient coordinates are LPS; the returned affine is RAS (x and y negated).

    Parameters
    ----------
    folder : Path
    max_voxels : int
        Largest rows x columns x slices read.

    Returns
    -------
    volume : (rows, columns, slices) float32 ndarray
    affine : (4, 4) ndarray
        Voxel -> world RAS mm.
    """
    folder = Path(folder)
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as error:
        raise _refuse(folder, f"cannot list the DICOM folder ({error.strerror or type(error).__name__})") from None
    slices = [s for s in (_read_header(folder, file) for file in files) if s is not None]
    if not slices:
        raise _refuse(folder, "no DICOM image slices found in this folder")
    series = {s.series for s in slices}
    if len(series) > 1:
        raise _refuse(folder, f"folder holds {len(series)} DICOM series; give a folder with one")
    if len(slices) < 2:
        raise _refuse(folder, "a CT series needs at least 2 slices")
    first = slices[0]
    for s in slices[1:]:
        _check_consistent(folder, first, s)
    n_voxels = first.rows * first.columns * len(slices)
    if n_voxels > max_voxels:
        raise _refuse(folder, f"series of {len(slices)} slices of {first.rows} x {first.columns} has "
                              f"{n_voxels:,} voxels, more than the {max_voxels:,} allowed")
    row, col = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(normal @ s.position))
    gaps = np.diff([float(normal @ s.position) for s in slices])
    typical = float(np.median(gaps))
    for k, gap in enumerate(gaps):
        if gap <= 1e-3 or abs(gap - typical) > GAP_TOLERANCE * typical + 1e-3:
            raise _slice_error(folder, slices[k + 1].file,
                               f"slices are duplicated or unevenly spaced ({gap:.3g} mm after the previous "
                               f"slice, {typical:.3g} mm elsewhere)")
    row_mm, col_mm = first.spacing  # (between rows, between columns)
    low, high = VOXEL_SIZE_RANGE_MM
    for size in (row_mm, col_mm, typical):
        if not low <= size <= high:
            raise _refuse(folder, f"voxel size {row_mm:g} x {col_mm:g} x {typical:g} mm is outside the plausible "
                                  f"range {low:g}-{high:g} mm")
    volume = np.empty((first.rows, first.columns, len(slices)), np.float32)
    for k, s in enumerate(slices):
        volume[:, :, k] = _pixels_hu(folder, s)
    # voxel (r, c, s) -> LPS: position_0 + c * col_mm * row_dir + r * row_mm * col_dir + s * step
    step = (slices[-1].position - slices[0].position) / (len(slices) - 1)
    lps = np.eye(4)
    lps[:3, 0] = col * row_mm
    lps[:3, 1] = row * col_mm
    lps[:3, 2] = step
    lps[:3, 3] = slices[0].position
    return volume, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _refuse(folder: Path, reason: str) -> FusplanInputError:
    return FusplanInputError(f"{display_path(folder)}: {reason}")


def _slice_error(folder: Path, file: Path, reason: str) -> FusplanInputError:
    return FusplanInputError(f"{display_path(folder)}: slice {display_path(Path(file.name))}: {reason}")


def _read_header(folder: Path, file: Path) -> _Slice | None:
    """The checked header of one slice; None for a file that is not a DICOM image."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if file.stat().st_size > MAX_SLICE_BYTES:
        raise _slice_error(folder, file, f"file is larger than {MAX_SLICE_BYTES:,} bytes: not a CT slice")
    try:
        meta = pydicom.filereader.read_file_meta_info(file)
    except InvalidDicomError:
        return None  # not a DICOM file (e.g. a text note)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for damaged headers
        raise _slice_error(folder, file, f"unreadable DICOM header ({first_line(error)})") from None
    if str(meta.get("TransferSyntaxUID", "")) == _DEFLATED:
        _check_inflated_size(folder, file, meta)
    try:
        ds = pydicom.dcmread(file, stop_before_pixels=False, defer_size=1024)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for damaged files
        raise _slice_error(folder, file, f"unreadable DICOM slice ({first_line(error)})") from None
    if "PixelData" not in ds and "ImagePositionPatient" not in ds:
        return None  # no image (a DICOMDIR index, a structured report)
    missing = [tag for tag in REQUIRED_TAGS if tag not in ds]
    if missing:
        raise _slice_error(folder, file, f"missing DICOM tag {', '.join(missing)}")
    try:
        position = np.array([float(v) for v in ds.ImagePositionPatient])
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        spacing = tuple(float(v) for v in ds.PixelSpacing)
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (TypeError, ValueError) as error:
        raise _slice_error(folder, file, f"malformed geometry tag ({first_line(error)})") from None
    if position.shape != (3,) or not np.all(np.isfinite(position)):
        raise _slice_error(folder, file, "ImagePositionPatient must be 3 finite numbers")
    if orientation.shape != (6,) or not np.all(np.isfinite(orientation)):
        raise _slice_error(folder, file, "ImageOrientationPatient must be 6 finite numbers")
    row, col = orientation[:3], orientation[3:]
    if (abs(np.linalg.norm(row) - 1) > ORIENTATION_TOLERANCE or abs(np.linalg.norm(col) - 1) > ORIENTATION_TOLERANCE
            or abs(row @ col) > ORIENTATION_TOLERANCE):
        raise _slice_error(folder, file, "ImageOrientationPatient is not two orthogonal unit vectors")
    if len(spacing) != 2 or not all(np.isfinite(v) and v > 0 for v in spacing):
        raise _slice_error(folder, file, f"PixelSpacing must be 2 positive numbers (got {list(spacing)})")
    if rows < 2 or columns < 2:
        raise _slice_error(folder, file, f"image of {rows} x {columns} pixels is too small")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise _slice_error(folder, file, "not a grey-scale slice (SamplesPerPixel is not 1)")
    return _Slice(file, position, orientation, spacing, rows, columns, str(ds.get("SeriesInstanceUID", "")))


def _check_inflated_size(folder: Path, file: Path, meta) -> None:
    """Inflate a deflated slice in bounded chunks; refuse one that grows past :data:`MAX_SLICE_BYTES`."""
    group_length = meta.get("FileMetaInformationGroupLength")
    if group_length is None:
        raise _slice_error(folder, file, "deflated slice without a file meta group length")
    start = 128 + 4 + 12 + int(group_length)  # preamble, "DICM", the group length element, the group
    decomp = zlib.decompressobj(-zlib.MAX_WBITS)
    size = 0
    with open(file, "rb") as handle:
        handle.seek(start)
        pending = handle.read()
    try:
        while pending and not decomp.eof:
            size += len(decomp.decompress(pending, 1 << 20))
            if size > MAX_SLICE_BYTES:
                raise _slice_error(folder, file, f"deflated slice inflates to more than {MAX_SLICE_BYTES:,} "
                                                 "bytes: not a CT slice (deflate bomb?)")
            pending = decomp.unconsumed_tail
    except zlib.error as error:
        raise _slice_error(folder, file, f"deflated data is corrupt ({error})") from None


def _check_consistent(folder: Path, first: _Slice, other: _Slice) -> None:
    if (other.rows, other.columns) != (first.rows, first.columns):
        raise _slice_error(folder, other.file, f"{other.rows} x {other.columns} pixels, the series' first slice "
                                               f"has {first.rows} x {first.columns}")
    if np.abs(np.subtract(other.spacing, first.spacing)).max() > SPACING_TOLERANCE * max(first.spacing):
        raise _slice_error(folder, other.file, f"PixelSpacing {list(other.spacing)} differs from the first "
                                               f"slice's {list(first.spacing)}")
    if np.abs(other.orientation - first.orientation).max() > ORIENTATION_TOLERANCE:
        raise _slice_error(folder, other.file, "ImageOrientationPatient differs from the first slice's")


def _pixels_hu(folder: Path, s: _Slice) -> np.ndarray:
    """One slice's pixels in HU (RescaleSlope, RescaleIntercept), decoded and checked."""
    import pydicom

    try:
        ds = pydicom.dcmread(s.file)
        pixels = ds.pixel_array
        slope = float(ds.get("RescaleSlope", 1.0))
        intercept = float(ds.get("RescaleIntercept", 0.0))
    except Exception as error:  # noqa: BLE001 - missing decoders, truncated data, bad values
        raise _slice_error(folder, s.file, f"pixel data cannot be decoded ({first_line(error)})") from None
    if pixels.shape != (s.rows, s.columns):
        raise _slice_error(folder, s.file, f"pixel data has shape {pixels.shape}, the header says "
                                           f"{s.rows} x {s.columns}")
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
        raise _slice_error(folder, s.file, f"RescaleSlope {slope:g} / RescaleIntercept {intercept:g} is not usable")
    hu = pixels.astype(np.float64) * slope + intercept
    if np.abs(hu).max() > HU_LIMIT:
        raise _slice_error(folder, s.file, f"values reach {np.abs(hu).max():.3g} after RescaleSlope {slope:g} and "
                                           f"RescaleIntercept {intercept:g}: not Hounsfield units")
    return hu.astype(np.float32)
