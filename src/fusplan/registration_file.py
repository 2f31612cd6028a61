"""The registration file (``.npz``): write with a checksum, read with full validation.

A saved registration moves every atlas target, so a damaged or foreign file must never
be read as a slightly different registration. The format (version
:data:`FORMAT_VERSION`) is a NumPy ``.npz`` archive holding exactly

- ``affine_mm`` (4, 4): template world mm -> subject world mm;
- ``field_affine`` (4, 4): displacement-grid voxel -> template world mm;
- ``forward_mm``, ``backward_mm``: displacements, shape ``field_shape + (3,)`` (both
  empty for an affine-only registration);
- ``meta``: a JSON string with the scalar facts, the format version and ``sha256``, the
  SHA-256 of every array (name, dtype, shape, bytes) and of the rest of ``meta``.

:func:`read_registration_file` refuses, naming the file: anything that is not a regular
``.npz`` archive of those members (random bytes, truncated zip, a foreign ``.npz``,
members too large to be a registration), another format version, a checksum that does
not match, wrong shapes or dtypes, NaN/Inf values, an affine whose last row is not
``0 0 0 1`` or whose linear part is singular, and a scan fingerprint that differs from
the one expected. Files of format 1 (no checksum, fusplan before this check) are refused
with a request to re-run ``fusplan target`` to regenerate them: they cannot be verified.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FusplanInputError
from .textfile import display_path

#: Version written into ``meta.format_version``.
FORMAT_VERSION = 2
#: Largest total uncompressed size of the archive's members (a 128^3 field pair is ~50 MB).
MAX_ARCHIVE_BYTES = 256 << 20
ARRAY_NAMES = ("affine_mm", "field_affine", "forward_mm", "backward_mm")
META_KEYS = {
    "format_version": int, "atlas": str, "field_shape": list, "method": str, "time_s": float,
    "similarity": float, "affine_similarity": float, "contrast": str, "scan_fingerprint": str,
    "settings": dict, "sha256": str,
}


def arrays_checksum(arrays: dict[str, np.ndarray], meta: dict) -> str:
    """SHA-256 of the arrays (name, dtype, shape, C-order bytes) and of ``meta`` minus ``sha256``."""
    digest = hashlib.sha256()
    for name in ARRAY_NAMES:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    digest.update(json.dumps(rest, sort_keys=True).encode())
    return digest.hexdigest()


def write_registration_file(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` (without version or checksum: both are added) to ``path``."""
    meta = {**meta, "format_version": FORMAT_VERSION}
    meta["sha256"] = arrays_checksum(arrays, meta)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **{name: arrays[name] for name in ARRAY_NAMES}, meta=np.array(json.dumps(meta)))


def read_registration_file(path: str | os.PathLike, expected_fingerprint: str | None = None):
    """Read and validate a registration file.

    Parameters
    ----------
    path : str or path-like
    expected_fingerprint : str, optional
        Fingerprint of the scan the registration must belong to. A registration saved
        without a fingerprint (built by hand, e.g. an identity for a scan already in
        template space) is not checked, as in :func:`fusplan.targeting.locate_targets`.

    Returns
    -------
    arrays : dict of ndarray
        ``affine_mm``, ``field_affine`` (float64), ``forward_mm``, ``backward_mm`` (float32).
    meta : dict
        The scalar facts (``field_shape`` as a tuple).

    Raises
    ------
    FusplanInputError
        One line naming the registration file and what is wrong with it.
    """
    path = Path(path)
    name = display_path(path)

    def refuse(problem: str) -> FusplanInputError:
        return FusplanInputError(f"{name}: {problem}")

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise refuse("no such registration file") from None
    except OSError as error:
        raise refuse(f"cannot read registration file ({error.strerror or type(error).__name__})") from None
    if not stat.S_ISREG(mode):
        raise refuse("registration file is not a regular file")
    if not zipfile.is_zipfile(path):
        raise refuse("not a fusplan registration file (not an .npz archive, or truncated)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info.file_size for info in archive.infolist()}
        expected = {f"{n}.npy" for n in (*ARRAY_NAMES, "meta")}
        if set(members) != expected:
            raise refuse(f"not a fusplan registration file (members {', '.join(sorted(members)) or 'none'})")
        if sum(members.values()) > MAX_ARCHIVE_BYTES:
            raise refuse(f"registration file expands to more than {MAX_ARCHIVE_BYTES:,} bytes")
        with np.load(path, allow_pickle=False) as data:
            loaded = {n: data[n] for n in (*ARRAY_NAMES, "meta")}
        for member, value in loaded.items():
            if not isinstance(value, np.ndarray):
                raise refuse(f"not a fusplan registration file ({member} is not an array)")
        meta_text = loaded.pop("meta")
        arrays = loaded
    except FusplanInputError:
        raise
    except Exception as error:  # zipfile, zlib and numpy raise many types for damaged members
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise refuse(f"registration file is damaged ({text})") from None
    meta = _read_meta(meta_text, refuse)
    if meta["sha256"] != arrays_checksum(arrays, meta):
        raise refuse("registration file is damaged or was edited (checksum does not match)")
    _check_arrays(arrays, meta, refuse)
    recorded = meta["scan_fingerprint"]
    if expected_fingerprint is not None and recorded and recorded != expected_fingerprint:
        raise refuse("registration was computed for another scan (scan fingerprint differs)")
    arrays = {
        "affine_mm": arrays["affine_mm"].astype(float),
        "field_affine": arrays["field_affine"].astype(float),
        "forward_mm": arrays["forward_mm"].astype(np.float32, copy=False),
        "backward_mm": arrays["backward_mm"].astype(np.float32, copy=False),
    }
    meta["field_shape"] = tuple(meta["field_shape"])
    return arrays, meta


def _read_meta(meta_text: np.ndarray, refuse) -> dict[str, Any]:
    if meta_text.dtype.kind != "U" or meta_text.shape != ():
        raise refuse("not a fusplan registration file (meta is not text)")
    try:
        meta = json.loads(str(meta_text))
    except ValueError:
        raise refuse("not a fusplan registration file (meta is not JSON)") from None
    if not isinstance(meta, dict):
        raise refuse("not a fusplan registration file (meta is not a mapping)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        if version == 1:
            raise refuse("registration file of format 1 has no checksum and cannot be verified: "
                         "re-run fusplan target to regenerate it")
        raise refuse(f"registration format {version!r} is not supported (this fusplan reads {FORMAT_VERSION})")
    for key, kind in META_KEYS.items():
        value = meta.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else isinstance(value, kind)
        if not ok:
            raise refuse(f"registration meta.{key} is missing or not a {kind.__name__}")
        if kind is float and not math.isfinite(value):
            raise refuse(f"registration meta.{key} is not finite")
    shape = meta["field_shape"]
    if len(shape) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 1024 for n in shape):
        raise refuse(f"registration meta.field_shape must be 3 integers in 0..1024 (got {shape!r})")
    return meta


def _check_arrays(arrays: dict[str, np.ndarray], meta: dict, refuse) -> None:
    for key in ARRAY_NAMES:
        array = arrays[key]
        if array.dtype.kind != "f":
            raise refuse(f"registration {key} has dtype {array.dtype}, not floating point")
        if not np.all(np.isfinite(array)):
            raise refuse(f"registration {key} contains NaN or Inf")
    for key in ("affine_mm", "field_affine"):
        affine = arrays[key]
        if affine.shape != (4, 4):
            raise refuse(f"registration {key} has shape {affine.shape}, not (4, 4)")
        if not np.array_equal(affine[3], [0, 0, 0, 1]):
            raise refuse(f"registration {key} last row is not 0 0 0 1")
        linear = affine[:3, :3]
        scale = float(np.abs(linear).max())
        if not scale > 0 or abs(np.linalg.det(linear)) < 1e-6 * scale**3 or np.linalg.cond(linear) > 1e6:
            raise refuse(f"registration {key} is singular (not invertible)")
    shape = tuple(meta["field_shape"])
    forward, backward = arrays["forward_mm"], arrays["backward_mm"]
    if forward.size == 0 and backward.size == 0:
        return
    if forward.shape != shape + (3,) or backward.shape != shape + (3,):
        raise refuse(f"registration displacement shapes {forward.shape} and {backward.shape} "
                     f"do not match field_shape {shape} + (3,)")
