"""Low-level NIfTI checks that run before nibabel is trusted with a file.

nibabel is lenient by design: it normalises zero or NaN voxel sizes to 1 mm, reads a
``.nii.gz`` whose gzip checksum is wrong (the damaged voxels come back changed, without
a word), and logs or warns on stderr. A planner must not be lenient, so
:func:`fusplan.io.load_scan` calls these helpers first:

- :func:`check_header_fields` checks the raw header fields nibabel would normalise:
  a scalar datatype whose ``bitpix`` agrees with it, positive finite ``pixdim[1:4]`` and a
  ``vox_offset`` past the header;
- :func:`read_verified_gzip` decompresses a ``.nii.gz`` in bounded chunks, stops as soon
  as the output exceeds what the header declares (gzip bombs), and lets zlib verify
  every member's CRC-32 and length (ISIZE);
- :func:`quiet_nibabel` turns nibabel's warnings and log records into a list, so nothing
  but the one error line reaches stderr.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
import zlib
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from .errors import FusplanInputError
from .textfile import display_path

#: Bytes read from the compressed file per step.
CHUNK_BYTES = 1 << 20
#: Bytes a ``.nii.gz`` may decompress to beyond ``vox_offset`` + the declared image
#: (trailing padding some writers leave); more is refused as a mismatch or a bomb.
GZIP_SLACK_BYTES = 1 << 16
#: Deflate cannot compress better than about 1032:1 (zlib technical details: a 258-byte
#: match costs at least 2 bits), so a header declaring more than this times the file size
#: cannot be satisfied.
DEFLATE_MAX_RATIO = 1032
#: NIfTI datatype codes of scalar voxels fusplan reads (no complex, RGB, RGBA, float128).
SCALAR_DATATYPES = {
    2: "uint8", 4: "int16", 8: "int32", 16: "float32", 64: "float64",
    256: "int8", 512: "uint16", 768: "uint32", 1024: "int64", 1280: "uint64",
}
_NON_SCALAR = {
    1: "binary (1 bit)", 32: "complex64", 128: "RGB24", 1536: "float128",
    1792: "complex128", 2048: "complex256", 2304: "RGBA32",
}


def _refuse(path: Path, reason: str) -> FusplanInputError:
    return FusplanInputError(f"{display_path(path)}: {reason}")


def check_header_fields(header, path: Path) -> None:
    """Refuse raw header fields that nibabel would silently repair or misread.

    Parameters
    ----------
    header : nibabel.Nifti1Header or Nifti2Header
    path : Path
        The file, for messages.
    """
    code = int(header["datatype"])
    if code not in SCALAR_DATATYPES:
        kind = _NON_SCALAR.get(code, f"unknown code {code}")
        raise _refuse(path, f"datatype {kind} is not a scalar image; fusplan needs one intensity per voxel")
    dtype = np.dtype(SCALAR_DATATYPES[code])
    bitpix = int(header["bitpix"])
    if bitpix != 8 * dtype.itemsize:
        raise _refuse(path, f"bitpix {bitpix} disagrees with datatype {dtype.name} ({8 * dtype.itemsize} bits)")
    pixdim = np.asarray(header["pixdim"][1:4], dtype=float)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim <= 0):
        sizes = " x ".join(f"{v:g}" for v in pixdim)
        raise _refuse(path, f"voxel size (pixdim) {sizes} mm is not positive and finite")
    offset = float(header["vox_offset"])
    minimum = int(header.single_vox_offset)
    if not np.isfinite(offset) or offset < minimum:
        raise _refuse(path, f"vox_offset {offset:g} points inside the header (must be >= {minimum})")


def image_bytes(header) -> int:
    """Bytes of voxel data the header declares (shape x itemsize), as a Python int."""
    shape = header.get_data_shape()
    return int(np.prod(np.asarray(shape, dtype=object))) * int(header.get_data_dtype().itemsize)


def check_file_size(header, path: Path, size: int) -> None:
    """Refuse a ``vox_offset`` beyond the file or a file shorter than the declared image."""
    offset = int(header["vox_offset"])
    if offset >= size:
        raise _refuse(path, f"vox_offset {offset} is beyond the end of the data ({size} bytes)")
    needed = offset + image_bytes(header)
    if size < needed:
        raise _refuse(path, f"data is truncated or corrupt ({size} bytes, the header needs {needed})")


def read_verified_gzip(path: Path, expected_bytes: int) -> bytearray:
    """Decompress a whole gzip file, verifying every member's CRC-32 and length.

    Parameters
    ----------
    path : Path
    expected_bytes : int
        What the header declares (``vox_offset`` + image bytes); decompression stops
        with a refusal once the output passes it by more than :data:`GZIP_SLACK_BYTES`.

    Returns
    -------
    bytearray
        The decompressed stream (one buffer, allocated once).
    """
    compressed = path.stat().st_size
    if expected_bytes > DEFLATE_MAX_RATIO * compressed + GZIP_SLACK_BYTES:
        raise _refuse(path, f"data is truncated or corrupt (the header declares {expected_bytes:,} bytes, "
                            f"more than {compressed:,} compressed bytes can hold)")
    limit = expected_bytes + GZIP_SLACK_BYTES
    out = bytearray(limit + 1)  # allocated once (bounded by the file size above): no growth copies
    size = 0
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as handle:
        pending = b""
        while True:
            if len(pending) < 2:
                more = handle.read(CHUNK_BYTES)
                if not more and not pending:
                    break
                pending += more
            if decomp.eof:  # a member ended: another member, zero padding, or garbage
                if pending[:2] == b"\x1f\x8b":
                    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif pending.strip(b"\0"):
                    raise _refuse(path, "has bytes that are not gzip data after the gzip stream")
                else:
                    pending = b""
                    continue
            try:
                chunk = decomp.decompress(pending, min(limit + 1 - size, CHUNK_BYTES * 16))
            except zlib.error as error:
                raise _refuse(path, f"gzip stream is corrupt ({error}): the data cannot be trusted") from None
            out[size:size + len(chunk)] = chunk
            size += len(chunk)
            if size > limit:
                raise _refuse(
                    path,
                    f"decompresses to more than the {expected_bytes:,} bytes its header declares "
                    "(gzip bomb or wrong header)",
                )
            pending = decomp.unused_data if decomp.eof else decomp.unconsumed_tail
    if not decomp.eof:
        raise _refuse(path, "data is truncated or corrupt (the gzip stream ends early)")
    del out[size:]  # shrinks in place
    return out


@contextlib.contextmanager
def quiet_nibabel(messages: list[str]) -> Iterator[None]:
    """Collect Python warnings and nibabel log records into ``messages`` instead of stderr.

    numpy floating-point warnings are silenced too (``np.errstate``); the caller checks
    the results itself.
    """
    logger = logging.getLogger("nibabel.global")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level

    class _Collect(logging.Handler):
        def emit(self, record):
            messages.append(_one_line(record.getMessage()))

    collector = _Collect(level=logging.DEBUG)
    logger.handlers = [collector]
    logger.propagate = False
    logger.setLevel(logging.INFO)  # header repairs (e.g. "setting qfac to 1") are logged at INFO
    try:
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            yield
        messages.extend(_one_line(str(w.message)) for w in caught)
    finally:
        logger.handlers = handlers
        logger.propagate = propagate
        logger.setLevel(level)


def _one_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "warning"
