"""Safe NIfTI loading and saving: the one checked reader of every image a user gives.

Every image in fusplan is an array plus an affine that maps voxel indices to world RAS
millimetres (the NIfTI convention); the geometry of such pairs (world <-> voxel,
resampling) lives in :mod:`fusplan.spatial`.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator

import nibabel as nib
import numpy as np

from .errors import FusplanInputError, first_line
from .outputs import temp_prefix
from .spatial import voxel_sizes_mm, voxel_to_world, world_to_voxel
from .nifti_check import check_file_size, check_header_fields, image_bytes, quiet_nibabel, read_verified_gzip
from .textfile import display_path

#: Largest number of voxels a header may declare before we refuse to allocate.
MAX_VOXELS = 512**3
#: Plausible range of voxel edge lengths for a human head MRI, in mm.
VOXEL_SIZE_RANGE_MM = (0.05, 20.0)


@dataclass(frozen=True)
class Scan:
    """A validated 3D scan: intensities and the voxel -> world RAS mm affine.

    Attributes
    ----------
    data : ndarray, float32, 3D
        Intensities in storage order.
    affine : (4, 4) ndarray
        Voxel index -> world RAS mm.
    path : Path or None
        Where the scan was read from.
    affine_source : str
        ``"sform"``, ``"qform"`` or ``"array"`` (built in memory).
    warnings : tuple of str
        Things a careful user should know (oblique axes, anisotropic voxels...).
    xform_codes : (int, int) or None
        ``(sform_code, qform_code)`` of the file it was read from (None when built in
        memory): maps written on its grid keep them.
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    affine_source: str = "array"
    warnings: tuple[str, ...] = field(default=())
    xform_codes: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along each storage axis."""
        return tuple(self.data.shape)

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel edge lengths in mm along each storage axis."""
        return voxel_sizes_mm(self.affine)

    @property
    def orientation(self) -> str:
        """Orientation code of the storage axes, e.g. ``"RAS"`` or ``"LPS"``."""
        return "".join(nib.aff2axcodes(self.affine))

    def voxel_to_world(self, index) -> np.ndarray:
        """World RAS mm of voxel indices ``(..., 3)``."""
        return voxel_to_world(self.affine, index)

    def world_to_voxel(self, world_mm) -> np.ndarray:
        """Fractional voxel indices ``(..., 3)`` of world RAS mm points."""
        return world_to_voxel(self.affine, world_mm)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and rename it to ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is untouched,
    so a reader never sees a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)  # keep .nii.gz so writers pick the format
    # The name carries this pid, so fusplan.outputs.clean_stale_writes can remove it if we are killed.
    handle, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    tmp_path = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; outputs get normal permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | os.PathLike, *,
               xform_codes: tuple[int, int] | None = None, descrip: str | None = None) -> Path:
    """Write ``data`` with ``affine`` atomically (units mm and s in ``xyzt_units``).

    ``xform_codes`` ``(sform_code, qform_code)``: those of the scan the map belongs
    to (default: nibabel's, sform "aligned"); ``descrip``: the data's meaning and unit
    (at most 80 characters).
    """
    affine = np.asarray(affine, dtype=float)
    image = nib.Nifti1Image(np.asarray(data), affine)
    if xform_codes is not None:
        image.set_sform(affine, code=int(xform_codes[0]))
        image.set_qform(affine, code=int(xform_codes[1]))
    if descrip is not None:
        image.header["descrip"] = descrip[:80].encode("ascii", "replace")
    image.header.set_xyzt_units("mm", "sec")
    with atomic_output(path) as tmp:
        nib.save(image, tmp)
    return Path(path)


def _refuse(path: Path, reason: str) -> FusplanInputError:
    return FusplanInputError(f"{display_path(path)}: {reason}")


def _header_affine(image, path: Path) -> tuple[np.ndarray, str]:
    header = image.header
    sform, sform_code = header.get_sform(coded=True)
    if sform is not None and int(sform_code) > 0:
        return sform, "sform"
    qform, qform_code = header.get_qform(coded=True)
    if qform is not None and int(qform_code) > 0:
        return qform, "qform"
    raise _refuse(path, "header has neither an sform nor a qform (both codes are 0): world position unknown")


def _check_affine(affine: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(affine)):
        raise _refuse(path, "affine contains NaN or Inf")
    sizes = voxel_sizes_mm(affine)
    low, high = VOXEL_SIZE_RANGE_MM
    if np.any(sizes < low) or np.any(sizes > high):
        sizes_text = " x ".join(f"{s:g}" for s in sizes)
        raise _refuse(path, f"voxel size {sizes_text} mm is outside the plausible range {low:g}-{high:g} mm")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6 * np.prod(sizes) or np.linalg.cond(affine[:3, :3]) > 1e6:
        raise _refuse(path, "affine is not invertible (degenerate voxel axes)")


def _check_header(image, path: Path, max_voxels: int = MAX_VOXELS, series: bool = False) -> tuple[int, ...]:
    """The shape to read: 3D (a trailing axis of 1 dropped), or 4D with ``series``."""
    shape = tuple(int(n) for n in image.header.get_data_shape())
    if any(n <= 0 for n in shape):
        raise _refuse(path, f"header declares an empty image of shape {shape}")
    n_voxels = int(np.prod(np.asarray(shape, dtype=object)))
    if n_voxels > max_voxels:
        raise _refuse(path, f"header declares {n_voxels:,} voxels (shape {shape}), more than the {max_voxels:,} allowed")
    spatial = shape[:3]
    extra = shape[3:]
    if len(spatial) < 3 or min(spatial) < 2:
        raise _refuse(path, f"not a 3D volume (shape {shape}); fusplan needs a 3D {'series' if series else 'scan'}")
    if series:
        if len(extra) != 1 or extra[0] < 2:
            raise _refuse(path, f"a series must be 4D with >= 2 frames (got shape {shape})")
        return shape
    if any(n != 1 for n in extra):
        raise _refuse(path, f"has {int(np.prod(extra))} volumes (shape {shape}); give a single 3D volume")
    return spatial


def _orientation_warnings(affine: np.ndarray, shape) -> list[str]:
    warnings = []
    sizes = voxel_sizes_mm(affine)
    if sizes.max() / sizes.min() > 1.5:
        warnings.append("anisotropic voxels (" + " x ".join(f"{s:.3g}" for s in sizes) + " mm)")
    obliquity_deg = float(np.degrees(nib.affines.obliquity(affine)).max())
    if obliquity_deg > 1.0:
        warnings.append(f"oblique storage axes (up to {obliquity_deg:.1f} deg from the scanner axes)")
    extent_mm = sizes * np.asarray(shape)
    if extent_mm.min() < 100:
        warnings.append(f"small field of view ({' x '.join(f'{e:.0f}' for e in extent_mm)} mm): not a whole head?")
    return warnings


@dataclass(frozen=True)
class CheckedNifti:
    """A NIfTI file read through every check of :func:`read_nifti` (the reader of every image input).

    Attributes
    ----------
    data : ndarray, float32
        Scaled values (``scl_slope`` / ``scl_inter`` applied), all finite; 3D, or 4D for a series.
    affine : (4, 4) ndarray
        Voxel -> world RAS mm (sform preferred, qform as a fallback).
    affine_source : str
        ``"sform"`` or ``"qform"``.
    header : nibabel header
        The raw header as stored (not repaired by nibabel).
    messages : tuple of str
        Warnings nibabel raised while reading.
    """

    data: np.ndarray
    affine: np.ndarray
    affine_source: str
    header: object
    messages: tuple[str, ...]


def read_nifti(path: str | os.PathLike, *, what: str = "scan", max_voxels: int = MAX_VOXELS,
               series: bool = False, refuse_constant: bool = False) -> CheckedNifti:
    """Read a NIfTI-1 or NIfTI-2 file (``.nii`` or ``.nii.gz``) through every check, cheap first.

    Checked in this order, all before any allocation of voxel data: missing, not a regular
    file or not NIfTI; a header nibabel cannot parse; a shape that is not a single 3D
    volume (or, with ``series``, a 4D series of >= 2 frames) or has more than
    ``max_voxels`` voxels; a non-scalar datatype (RGB, complex...) or a ``bitpix`` that
    disagrees with it; zero, negative, NaN or infinite ``pixdim``; ``vox_offset`` inside
    the header or beyond the data; a file shorter than the image; no usable affine,
    implausible voxel sizes or a non-invertible affine; for ``.nii.gz``, a gzip stream
    whose CRC-32 or length is wrong, that ends early, or that decompresses to more than the
    header declares (gzip bombs); then, on the native data type, a constant image (with
    ``refuse_constant``); last, NaN/Inf values after scaling.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file is, for messages (``"scan"``, ``"CT"``, ``"thermometry series"``).
    max_voxels : int
        Largest number of values (all volumes) read.
    series : bool
        Read a 4D series instead of a 3D volume.
    refuse_constant : bool
        Refuse an image whose voxels all hold one value.

    Raises
    ------
    FusplanInputError
        One line naming the file and the reason.
    """
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise _refuse(path, f"not a NIfTI file name (expected .nii or .nii.gz for a {what})")
    _check_regular_file(path)
    messages: list[str] = []
    with quiet_nibabel(messages):
        header, native, affine, source = _read_nifti(path, name.endswith(".gz"), max_voxels, series)
        if refuse_constant and native.size and native.min() == native.max():  # stored dtype: no float copy
            raise _refuse(path, f"image is constant (every voxel is {native.flat[0]}): no anatomy to plan on")
        data = _scaled_float32(native, header)
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise _refuse(path, f"contains {bad} NaN or Inf voxels (values must be finite)")
    return CheckedNifti(data=data, affine=np.asarray(affine, dtype=float), affine_source=source, header=header,
                        messages=tuple(dict.fromkeys(messages)))


def load_scan(path: str | os.PathLike) -> Scan:
    """Load and validate a 3D NIfTI-1 or NIfTI-2 scan (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    Scan
        Data as float32 and the voxel -> world RAS mm affine (sform preferred,
        qform as a fallback). Warnings nibabel raised while reading are in
        ``Scan.warnings`` (prefixed ``nibabel:``), never on stderr.

    Raises
    ------
    FusplanInputError
        One-line message naming the file and the reason: every check of
        :func:`read_nifti` (a constant image included), then a constant image after scaling.
    """
    image = read_nifti(path, refuse_constant=True)
    data = image.data
    if float(data.max()) == float(data.min()):
        raise _refuse(Path(path), f"image is constant after scaling (every voxel is {float(data.min()):g})")
    warnings = _orientation_warnings(image.affine, data.shape)
    if image.affine_source == "qform":
        warnings.insert(0, "no sform: using the qform")
    warnings.extend(f"nibabel: {m}" for m in image.messages)
    codes = (int(image.header["sform_code"]), int(image.header["qform_code"]))
    return Scan(data=data, affine=image.affine, path=Path(path), affine_source=image.affine_source,
                warnings=tuple(warnings), xform_codes=codes)


def _check_regular_file(path: Path) -> None:
    """Refuse a missing path, a folder, a FIFO or device, or a name the system cannot open."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise _refuse(path, "no such file") from None
    except OSError as error:
        raise _refuse(path, f"cannot read ({error.strerror or type(error).__name__})") from None
    if stat.S_ISDIR(mode):
        raise _refuse(path, "is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise _refuse(path, "is not a regular file (a FIFO, socket or device)")


def _read_nifti(path: Path, gzipped: bool, max_voxels: int, series: bool):
    """Header checks, then the verified stored (unscaled) voxel array; see :func:`read_nifti`."""
    try:
        image = nib.load(path)
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for foreign or damaged headers
        _explain_unreadable(path)  # a precise reason when the raw header shows one
        raise _refuse(path, f"not a readable NIfTI file ({first_line(error)})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise _refuse(path, f"is a {type(image).__name__}, not NIfTI-1 or NIfTI-2")
    try:  # nibabel's loaded header is already repaired (vox_offset 0, pixdim fixed): reread it raw
        with nib.openers.ImageOpener(path) as handle:
            header = type(image.header).from_fileobj(handle, check=False)
    except Exception as error:  # noqa: BLE001 - a damaged raw header, whatever nibabel raises
        raise _refuse(path, f"not a readable NIfTI file ({first_line(error)})") from None
    shape = _check_header(image, path, max_voxels, series)
    check_header_fields(header, path)
    expected = int(header["vox_offset"]) + image_bytes(header)
    if gzipped:
        stream = read_verified_gzip(path, expected)
        check_file_size(header, path, len(stream))
        native = np.frombuffer(stream, dtype=header.get_data_dtype(), count=int(np.prod(shape)),
                               offset=int(header["vox_offset"]))
        native = native.reshape(shape, order="F")
    else:
        check_file_size(header, path, path.stat().st_size)
        try:
            native = np.asarray(image.dataobj.get_unscaled()).reshape(shape)
        except (EOFError, OSError, ValueError) as error:
            raise _refuse(path, f"data is truncated or corrupt ({first_line(error)})") from None
    affine, source = _header_affine(image, path)
    _check_affine(affine, path)
    return header, native, affine, source


def _explain_unreadable(path: Path) -> None:
    """Raise the header-field refusal for a file nibabel would not load, if there is one."""
    for header_class in (nib.Nifti1Header, nib.Nifti2Header):
        try:
            with nib.openers.ImageOpener(path) as handle:
                header = header_class.from_fileobj(handle, check=False)
        except Exception:  # noqa: BLE001 - not this header class: try the next
            continue
        if int(header["sizeof_hdr"]) == header.sizeof_hdr and bytes(header["magic"]).rstrip(b"\0") in (b"n+1", b"n+2"):
            check_header_fields(header, path)


def _scaled_float32(native: np.ndarray, header) -> np.ndarray:
    """Stored values -> float32 intensities with the header's scl_slope / scl_inter."""
    slope, inter = header.get_slope_inter()
    data = native.astype(np.float32)
    if slope is not None and slope != 1:
        data *= np.float32(slope)
    if inter is not None and inter != 0:
        data += np.float32(inter)
    return data


def scan_from_array(data: np.ndarray, affine: np.ndarray) -> Scan:
    """Build a :class:`Scan` from an in-memory array and affine (no file involved)."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 3:
        raise FusplanInputError(f"scan array must be 3D (got shape {data.shape})")
    affine = np.asarray(affine, dtype=float)
    _check_affine(affine, Path("<array>"))
    return Scan(data=data, affine=affine, warnings=tuple(_orientation_warnings(affine, data.shape)))
