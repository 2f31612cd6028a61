"""Checked ``.npz`` result files: written with a version and checksums, read with full validation.

A saved registration moves every target (the atlas registration) or every element ray
(the CT -> MR registration), so a damaged or foreign file must never be read as a slightly
different registration. Each kind of file is a :class:`FileFormat`: a NumPy ``.npz`` archive
holding exactly its arrays and ``meta``, a JSON string with the scalar facts, the format
version and ``sha256``, the SHA-256 of every array (name, dtype, shape, bytes) and of the
rest of ``meta``. :func:`read_checked_npz` refuses, naming the file: anything that is not a
regular ``.npz`` archive of those members (random bytes, truncated zip, a foreign ``.npz``,
an ``.npy``, members too large), another format version, a checksum that does not match,
missing or mistyped meta keys, wrong shapes or dtypes, NaN/Inf values, a (4, 4) affine whose
last row is not ``0 0 0 1`` or whose linear part is singular, and fingerprints that differ
from the ones expected. Files of the format before checksums are refused with a request to
regenerate them: they cannot be verified.

Two formats use it:

- :data:`ATLAS_REGISTRATION` (``registration.npz``, :mod:`fusplan.registration.result`):
  ``affine_mm`` (4, 4) template world mm -> subject world mm; ``field_affine`` (4, 4)
  displacement-grid voxel -> template world mm; ``forward_mm``, ``backward_mm``:
  displacements of shape ``field_shape + (3,)`` (both empty for an affine-only
  registration); read with :func:`read_registration_file`.
- :data:`CT_REGISTRATION` (``ct_registration.npz``, :mod:`fusplan.skull.registration`):
  ``mr_to_ct_mm`` (4, 4), a rigid map (rotation and translation, no scaling) from the
  scan's world to the CT's world, with the fingerprints of the CT and of the scan.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

from .errors import FusplanInputError, first_line
from .textfile import display_path

__all__ = ["FileFormat", "ATLAS_REGISTRATION", "CT_REGISTRATION", "FORMAT_VERSION", "arrays_checksum",
           "write_checked_npz", "read_checked_npz", "write_registration_file", "read_registration_file"]

Refuse = Callable[[str], FusplanInputError]


@dataclass(frozen=True)
class FileFormat:
    """What one kind of checked ``.npz`` file holds.

    Attributes
    ----------
    what : str
        Its name in messages (``"registration"``, ``"CT registration"``).
    version : int
        Written into ``meta.format_version``; the only version read.
    arrays : tuple of str
        The array members, all floating point and finite.
    affines : tuple of str
        Those of ``arrays`` that are (4, 4) invertible affines with last row ``0 0 0 1``.
    meta_keys : dict
        Required meta keys and their type (``float`` means a finite int or float).
    fingerprints : tuple of str
        Meta keys compared with the fingerprints the caller expects.
    max_bytes : int
        Largest total uncompressed size of the members.
    regenerate : str
        How to make a new file (said when an unverifiable older format is refused).
    check : callable(arrays, meta, refuse), optional
        Checks of this format beyond the common ones.
    """

    what: str
    version: int
    arrays: tuple[str, ...]
    affines: tuple[str, ...]
    meta_keys: dict[str, type]
    fingerprints: tuple[str, ...]
    max_bytes: int
    regenerate: str
    check: Callable[[dict, dict, Refuse], None] | None = None


def arrays_checksum(arrays: dict[str, np.ndarray], meta: dict, names=None) -> str:
    """SHA-256 of the arrays (name, dtype, shape, C-order bytes) and of ``meta`` minus ``sha256``."""
    digest = hashlib.sha256()
    for name in names or ATLAS_REGISTRATION.arrays:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    digest.update(json.dumps(rest, sort_keys=True).encode())
    return digest.hexdigest()


def write_checked_npz(path: Path, fmt: FileFormat, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` (without version or checksum: both are added) to ``path``."""
    meta = {**meta, "format_version": fmt.version}
    meta["sha256"] = arrays_checksum(arrays, meta, fmt.arrays)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **{name: arrays[name] for name in fmt.arrays}, meta=np.array(json.dumps(meta)))


def read_checked_npz(path: str | os.PathLike, fmt: FileFormat, expected: dict[str, str] | None = None):
    """Read and validate a file of format ``fmt``.

    Parameters
    ----------
    path : str or path-like
    fmt : FileFormat
    expected : dict, optional
        Fingerprints the file must carry, by meta key (``{"scan_fingerprint": ...}``). A
        recorded empty fingerprint (a file built by hand, e.g. an identity registration
        for a scan already in template space) is not checked.

    Returns
    -------
    arrays : dict of ndarray
    meta : dict

    Raises
    ------
    FusplanInputError
        One line naming the file and what is wrong with it.
    """
    path = Path(path)
    name = display_path(path)

    def refuse(problem: str) -> FusplanInputError:
        return FusplanInputError(f"{name}: {problem}")

    foreign = f"not a fusplan {fmt.what} file"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise refuse(f"no such {fmt.what} file") from None
    except OSError as error:
        raise refuse(f"cannot read {fmt.what} file ({error.strerror or type(error).__name__})") from None
    if not stat.S_ISREG(mode):
        raise refuse(f"{fmt.what} file is not a regular file")
    if not zipfile.is_zipfile(path):
        raise refuse(f"{foreign} (not an .npz archive, or truncated)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info.file_size for info in archive.infolist()}
        if set(members) != {f"{n}.npy" for n in (*fmt.arrays, "meta")}:
            raise refuse(f"{foreign} (members {', '.join(sorted(members)) or 'none'})")
        if sum(members.values()) > fmt.max_bytes:
            raise refuse(f"{fmt.what} file expands to more than {fmt.max_bytes:,} bytes")
        with np.load(path, allow_pickle=False) as data:
            loaded = {n: data[n] for n in (*fmt.arrays, "meta")}
        for member, value in loaded.items():
            if not isinstance(value, np.ndarray):
                raise refuse(f"{foreign} ({member} is not an array)")
        meta_text = loaded.pop("meta")
        arrays = loaded
    except FusplanInputError:
        raise
    except Exception as error:  # noqa: BLE001 - zipfile, zlib and numpy raise many types for damaged members
        raise refuse(f"{fmt.what} file is damaged ({first_line(error)})") from None
    meta = _read_meta(meta_text, fmt, refuse)
    if meta["sha256"] != arrays_checksum(arrays, meta, fmt.arrays):
        raise refuse(f"{fmt.what} file is damaged or was edited (checksum does not match)")
    _check_arrays(arrays, fmt, refuse)
    if fmt.check is not None:
        fmt.check(arrays, meta, refuse)
    for key, value in (expected or {}).items():
        recorded = meta[key]
        if recorded and recorded != value:
            thing = {"ct_fingerprint": "CT"}.get(key, key.removesuffix("_fingerprint"))
            raise refuse(f"{fmt.what} was computed for another {thing} ({key.replace('_', ' ')} differs)")
    return arrays, meta


def _read_meta(meta_text: np.ndarray, fmt: FileFormat, refuse: Refuse) -> dict[str, Any]:
    foreign = f"not a fusplan {fmt.what} file"
    if meta_text.dtype.kind != "U" or meta_text.shape != ():
        raise refuse(f"{foreign} (meta is not text)")
    try:
        meta = json.loads(str(meta_text))
    except ValueError:
        raise refuse(f"{foreign} (meta is not JSON)") from None
    if not isinstance(meta, dict):
        raise refuse(f"{foreign} (meta is not a mapping)")
    version = meta.get("format_version")
    if version != fmt.version:
        if isinstance(version, int) and not isinstance(version, bool) and version < fmt.version:
            raise refuse(f"{fmt.what} file of format {version} has no checksum and cannot be verified: "
                         f"{fmt.regenerate}")
        raise refuse(f"{fmt.what} format {version!r} is not supported (this fusplan reads {fmt.version})")
    for key, kind in {**fmt.meta_keys, "format_version": int, "sha256": str}.items():
        value = meta.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else isinstance(value, kind)
        if not ok:
            raise refuse(f"{fmt.what} meta.{key} is missing or not a {kind.__name__}")
        if kind is float and not math.isfinite(value):
            raise refuse(f"{fmt.what} meta.{key} is not finite")
    return meta


def _check_arrays(arrays: dict[str, np.ndarray], fmt: FileFormat, refuse: Refuse) -> None:
    for key in fmt.arrays:
        array = arrays[key]
        if array.dtype.kind != "f":
            raise refuse(f"{fmt.what} {key} has dtype {array.dtype}, not floating point")
        if not np.all(np.isfinite(array)):
            raise refuse(f"{fmt.what} {key} contains NaN or Inf")
    for key in fmt.affines:
        affine = arrays[key]
        if affine.shape != (4, 4):
            raise refuse(f"{fmt.what} {key} has shape {affine.shape}, not (4, 4)")
        if not np.array_equal(affine[3], [0, 0, 0, 1]):
            raise refuse(f"{fmt.what} {key} last row is not 0 0 0 1")
        linear = affine[:3, :3]
        scale = float(np.abs(linear).max())
        if not scale > 0 or abs(np.linalg.det(linear)) < 1e-6 * scale**3 or np.linalg.cond(linear) > 1e6:
            raise refuse(f"{fmt.what} {key} is singular (not invertible)")


def _check_displacements(arrays: dict[str, np.ndarray], meta: dict, refuse: Refuse) -> None:
    shape = meta["field_shape"]
    if len(shape) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 1024 for n in shape):
        raise refuse(f"registration meta.field_shape must be 3 integers in 0..1024 (got {shape!r})")
    shape = tuple(shape)
    forward, backward = arrays["forward_mm"], arrays["backward_mm"]
    if forward.size == 0 and backward.size == 0:
        return
    if forward.shape != shape + (3,) or backward.shape != shape + (3,):
        raise refuse(f"registration displacement shapes {forward.shape} and {backward.shape} "
                     f"do not match field_shape {shape} + (3,)")


#: Largest rigid translation of a CT -> MR registration: a head CT and MR of one patient
#: never lie further apart in their scanners' worlds (a wrong unit or a foreign file does).
MAX_CT_SHIFT_MM = 1000.0
#: How far the linear part of a CT -> MR registration may be from a rotation
#: (max |R^T R - I|); what the rigid fit writes is a rotation to float precision.
RIGID_TOLERANCE = 1e-4


def _check_rigid(arrays: dict[str, np.ndarray], meta: dict, refuse: Refuse) -> None:
    matrix = arrays["mr_to_ct_mm"]
    rotation = matrix[:3, :3]
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    if error > RIGID_TOLERANCE or np.linalg.det(rotation) <= 0:
        raise refuse("CT registration mr_to_ct_mm is not rigid (scaled, sheared or mirrored): "
                     "a CT -> MR registration is a rotation and a translation")
    shift = float(np.linalg.norm(matrix[:3, 3]))
    if shift > MAX_CT_SHIFT_MM:
        raise refuse(f"CT registration translation {shift:.0f} mm is more than {MAX_CT_SHIFT_MM:.0f} mm")


#: The atlas registration ``registration.npz`` (a 128^3 field pair is ~50 MB).
ATLAS_REGISTRATION = FileFormat(
    what="registration", version=2, arrays=("affine_mm", "field_affine", "forward_mm", "backward_mm"),
    affines=("affine_mm", "field_affine"),
    meta_keys={"atlas": str, "field_shape": list, "method": str, "time_s": float, "similarity": float,
               "affine_similarity": float, "contrast": str, "scan_fingerprint": str, "settings": dict},
    fingerprints=("scan_fingerprint",), max_bytes=256 << 20,
    regenerate="re-run fusplan target to regenerate it", check=_check_displacements)
#: The CT -> MR registration ``ct_registration.npz`` (format 1 had no checksum).
CT_REGISTRATION = FileFormat(
    what="CT registration", version=2, arrays=("mr_to_ct_mm",), affines=("mr_to_ct_mm",),
    meta_keys={"ct_fingerprint": str, "scan_fingerprint": str, "metric": float, "time_s": float},
    fingerprints=("ct_fingerprint", "scan_fingerprint"), max_bytes=1 << 16,
    regenerate="delete it and re-run with --ct to register the CT again", check=_check_rigid)
#: Version of :data:`ATLAS_REGISTRATION` files.
FORMAT_VERSION = ATLAS_REGISTRATION.version


def write_registration_file(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write an atlas registration (:data:`ATLAS_REGISTRATION`) to ``path``."""
    write_checked_npz(path, ATLAS_REGISTRATION, arrays, meta)


def read_registration_file(path: str | os.PathLike, expected_fingerprint: str | None = None):
    """Read and validate an atlas registration file (:data:`ATLAS_REGISTRATION`).

    Parameters
    ----------
    path : str or path-like
    expected_fingerprint : str, optional
        Fingerprint of the scan the registration must belong to (see :func:`read_checked_npz`).

    Returns
    -------
    arrays : dict of ndarray
        ``affine_mm``, ``field_affine`` (float64), ``forward_mm``, ``backward_mm`` (float32).
    meta : dict
        The scalar facts (``field_shape`` as a tuple).
    """
    expected = None if expected_fingerprint is None else {"scan_fingerprint": expected_fingerprint}
    arrays, meta = read_checked_npz(path, ATLAS_REGISTRATION, expected)
    arrays = {
        "affine_mm": arrays["affine_mm"].astype(float),
        "field_affine": arrays["field_affine"].astype(float),
        "forward_mm": arrays["forward_mm"].astype(np.float32, copy=False),
        "backward_mm": arrays["backward_mm"].astype(np.float32, copy=False),
    }
    meta["field_shape"] = tuple(meta["field_shape"])
    return arrays, meta
