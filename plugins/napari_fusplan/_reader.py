"""Read NIfTI scans into napari in world RAS mm.

The layer's ``affine`` is the scan's voxel -> RAS mm affine, so napari's world
coordinates are scanner RAS millimetres whatever the storage orientation (RAS,
LPS, permuted, oblique), and every layer fusplan adds lines up with the scan.
"""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Callable

from fusplan import Scan, load_scan

#: napari world axes of every fusplan layer.
AXIS_LABELS = ("R (mm)", "A (mm)", "S (mm)")


def scan_layer_data(scan: Scan, name: str | None = None) -> tuple:
    """napari layer-data tuple of a scan, placed by its affine in world RAS mm."""
    if name is None:
        name = Path(scan.path).name.split(".nii")[0] if scan.path is not None else "scan"
    low, high = (float(v) for v in _percentiles(scan))
    metadata = {
        "fusplan_path": str(scan.path) if scan.path is not None else None,
        "orientation": scan.orientation,
        "affine_source": scan.affine_source,
        "warnings": list(scan.warnings),
    }
    kwargs = {
        "name": name,
        "affine": scan.affine,
        "metadata": metadata,
        "colormap": "gray",
        "contrast_limits": (low, high),
        "axis_labels": AXIS_LABELS,
    }
    return (scan.data, kwargs, "image")


def _percentiles(scan: Scan):
    import numpy as np

    low, high = np.percentile(scan.data[::2, ::2, ::2], (0.5, 99.5))
    if high <= low:
        high = low + 1.0
    return low, high


def read_scan(path: str | os.PathLike | list) -> list[tuple]:
    """Load one or more NIfTI scans with :func:`fusplan.io.load_scan`.

    Raises
    ------
    FusplanInputError
        The file is not a usable scan (the message names it and the problem).
    """
    paths = path if isinstance(path, (list, tuple)) else [path]
    return [scan_layer_data(load_scan(p)) for p in paths]


def napari_get_reader(path) -> Callable | None:
    """npe2 reader hook: ``read_scan`` for ``.nii`` / ``.nii.gz`` paths, else None."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    if not paths or not all(str(p).lower().endswith((".nii", ".nii.gz")) for p in paths):
        return None
    return read_scan


__all__ = ["AXIS_LABELS", "napari_get_reader", "read_scan", "scan_layer_data"]
