"""What every corpus module shares: the :class:`Case` record, the commands and small NIfTI writers."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import nibabel as nib
import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "colin27" / "ch2.nii.gz"


@dataclass(frozen=True)
class Case:
    """One corpus entry: how to build it, the command to run, what must happen."""

    category: str
    name: str
    build: Callable[[Path], Path]  # writes the file into a folder, returns its path
    command: Callable[[Path], list[str]]  # CLI arguments for the built file
    reason: str  # substring of the one stderr line ("" with expect_ok)
    expect_ok: bool = False
    names_file: bool = True  # the line names the built path (False: a command-line option, named in reason)


def info(path: Path) -> list[str]:
    return ["info", os.fsdecode(path)]


def info_json(path: Path) -> list[str]:
    return ["info", os.fsdecode(path), "--json"]


def target_with(path: Path) -> list[str]:
    return ["target", str(SAMPLE), "--side", "left", "--registration", os.fsdecode(path)]


def simulate(path: Path) -> list[str]:
    return ["simulate", os.fsdecode(path)]


# ----------------------------------------------------------------------------------- NIfTI

def _data(shape=(12, 13, 14), dtype=np.float32) -> np.ndarray:
    values = np.random.default_rng(0).random(shape) * 100
    return values.astype(dtype)


def _header(data: np.ndarray, **fields) -> nib.Nifti1Header:
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    header = image.header
    header.set_data_offset(352)
    for key, value in fields.items():
        header[key] = value
    return header


def _nii_bytes(data: np.ndarray, **fields) -> bytes:
    header = _header(data, **fields)
    return header.binaryblock + b"\0" * 4 + np.asarray(data).tobytes(order="F")


def _write(folder: Path, name: str, payload: bytes) -> Path:
    path = folder / name
    path.write_bytes(payload)
    return path


def flip_bytes(payload: bytes, flips) -> bytes:
    """``payload`` with the byte at each ``position`` XOR-ed with its ``mask`` (``flips``: pairs)."""
    data = bytearray(payload)
    for position, mask in flips:
        data[position] ^= mask
    return bytes(data)
