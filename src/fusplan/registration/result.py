"""The registration result: points mapped both ways, saved to and loaded from ``.npz``.

Conventions: ``affine_mm`` maps template world mm to subject world mm. The two
displacement fields live on the cube grid (template world mm):
``template_to_subject(t) = affine_mm @ (t + forward(t))`` and
``subject_to_template(u) = m + backward(m)`` with ``m = inv(affine_mm) @ u``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io import Scan, atomic_output

from ..spatial import voxel_sizes_mm, voxel_to_world, world_to_voxel
from ..registration_file import read_registration_file, write_registration_file


@dataclass(frozen=True, eq=False)
class Registration:
    """A template -> subject registration (affine + diffeomorphic displacement).

    Attributes
    ----------
    atlas : str
        Atlas whose template was registered.
    affine_mm : (4, 4) ndarray
        Template world mm -> subject world mm.
    field_shape : tuple of int
        Shape of the displacement grid (the cube).
    field_affine : (4, 4) ndarray
        Cube voxel -> template world mm.
    forward_mm, backward_mm : ndarray, shape field_shape + (3,), float32
        Displacements in mm (see module docstring). Zero-size when the
        registration is affine only.
    method : str
        Human-readable description of the method.
    time_s : float
        Wall time of the registration.
    similarity : float
        Pearson correlation of template and registered subject inside the
        template brain (1 = identical up to a linear intensity map).
    affine_similarity : float
        The same after the affine stage.
    contrast : str
        ``"T1"`` or ``"non-T1"`` (the contrast guard's decision).
    scan_fingerprint : str
        Hash of the scan's data and affine (see :func:`scan_fingerprint`).
    """

    atlas: str
    affine_mm: np.ndarray
    field_shape: tuple[int, int, int]
    field_affine: np.ndarray
    forward_mm: np.ndarray
    backward_mm: np.ndarray
    method: str
    time_s: float
    similarity: float
    affine_similarity: float
    contrast: str
    scan_fingerprint: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def has_warp(self) -> bool:
        """True when there is a nonlinear stage."""
        return self.forward_mm.size > 0

    @property
    def scale_factors(self) -> np.ndarray:
        """Singular values of the affine's linear part (template -> subject scaling)."""
        return np.linalg.svd(self.affine_mm[:3, :3], compute_uv=False)

    def _displacement(self, field_mm: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
        if not self.has_warp:
            return np.zeros_like(points_mm)
        index = world_to_voxel(self.field_affine, points_mm)
        flat = index.reshape(-1, 3).T
        out = np.stack(
            [ndimage.map_coordinates(field_mm[..., k], flat, order=1, mode="nearest") for k in range(3)], axis=-1
        )
        return out.reshape(points_mm.shape)

    def template_to_subject(self, points_mm) -> np.ndarray:
        """Map template world mm ``(..., 3)`` to subject world mm."""
        points = np.asarray(points_mm, dtype=float)
        return voxel_to_world(self.affine_mm, points + self._displacement(self.forward_mm, points))

    def subject_to_template(self, points_mm) -> np.ndarray:
        """Map subject world mm ``(..., 3)`` to template world mm."""
        moved = world_to_voxel(self.affine_mm, points_mm)
        return moved + self._displacement(self.backward_mm, moved)

    def jacobian_determinant(self, points_mm) -> np.ndarray:
        """Local volume ratio (subject / template) of the mapping at template points ``(..., 3)``."""
        points = np.asarray(points_mm, dtype=float)
        det_affine = abs(np.linalg.det(self.affine_mm[:3, :3]))
        if not self.has_warp:
            return np.full(points.shape[:-1], det_affine)
        index = world_to_voxel(self.field_affine, points).reshape(-1, 3)
        # only the block of the field around the points is differentiated
        start = np.clip(np.floor(index.min(axis=0)).astype(int) - 2, 0, self.field_shape)
        stop = np.clip(np.ceil(index.max(axis=0)).astype(int) + 3, 0, self.field_shape)
        if np.any(stop - start < 3):
            return np.full(points.shape[:-1], det_affine)
        block = self.forward_mm[tuple(slice(a, b) for a, b in zip(start, stop))]
        spacing = voxel_sizes_mm(self.field_affine)
        axes = self.field_affine[:3, :3] / spacing
        # J = I + G @ axes.T, with G[..., i, j] = d f_i / d (grid axis j) in mm
        grads = np.stack([np.stack(np.gradient(block[..., i], *spacing), axis=-1) for i in range(3)], axis=-2)
        j = np.eye(3) + grads @ axes.T
        det = (j[..., 0, 0] * (j[..., 1, 1] * j[..., 2, 2] - j[..., 1, 2] * j[..., 2, 1])
               - j[..., 0, 1] * (j[..., 1, 0] * j[..., 2, 2] - j[..., 1, 2] * j[..., 2, 0])
               + j[..., 0, 2] * (j[..., 1, 0] * j[..., 2, 1] - j[..., 1, 1] * j[..., 2, 0]))
        values = ndimage.map_coordinates(det.astype(np.float32), (index - start).T, order=1, mode="nearest")
        return det_affine * values.reshape(points.shape[:-1])

    def matches(self, scan: Scan) -> bool:
        """True if this registration was computed for ``scan`` (same data and affine)."""
        return self.scan_fingerprint == scan_fingerprint(scan)

    def facts(self) -> dict:
        """JSON-ready summary: method, time, similarity, contrast, scale factors."""
        return {
            "method": self.method,
            "time_s": round(float(self.time_s), 2),
            "similarity": round(float(self.similarity), 4),
            "affine_similarity": round(float(self.affine_similarity), 4),
            "contrast": self.contrast,
            "scale_factors": [round(float(s), 4) for s in self.scale_factors],
            "atlas": self.atlas,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write to a compressed ``.npz`` file atomically, with a format version and a
        SHA-256 checksum (see :mod:`fusplan.registration_file`); reload with
        :func:`load_registration`."""
        path = Path(path)
        meta = {
            "atlas": self.atlas,
            "field_shape": [int(n) for n in self.field_shape],
            "method": self.method,
            "time_s": float(self.time_s),
            "similarity": float(self.similarity),
            "affine_similarity": float(self.affine_similarity),
            "contrast": self.contrast,
            "scan_fingerprint": self.scan_fingerprint,
            "settings": self.settings,
        }
        arrays = {"affine_mm": self.affine_mm, "field_affine": self.field_affine,
                  "forward_mm": self.forward_mm, "backward_mm": self.backward_mm}
        with atomic_output(path) as tmp:
            write_registration_file(tmp, arrays, meta)
        return path


def load_registration(path: str | os.PathLike, scan: Scan | None = None) -> Registration:
    """Read and validate a registration written by :meth:`Registration.save`.

    Parameters
    ----------
    path : str or path-like
    scan : Scan, optional
        When given, the registration must have been computed for this scan.

    Raises
    ------
    FusplanInputError
        One line naming the registration file: missing, not a registration archive,
        damaged (checksum), an older or newer format, wrong shapes, NaN/Inf, a singular
        affine, or computed for another scan.
    """
    expected = None if scan is None else scan_fingerprint(scan)
    arrays, meta = read_registration_file(path, expected_fingerprint=expected)
    return Registration(
        atlas=meta["atlas"],
        field_shape=meta["field_shape"],
        method=meta["method"],
        time_s=float(meta["time_s"]),
        similarity=float(meta["similarity"]),
        affine_similarity=float(meta["affine_similarity"]),
        contrast=meta["contrast"],
        scan_fingerprint=meta["scan_fingerprint"],
        settings=meta["settings"],
        **arrays,
    )


def scan_fingerprint(scan: Scan) -> str:
    """SHA-1 of a scan's data and affine (identifies the scan a registration belongs to)."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(scan.data, dtype=np.float32).tobytes())
    digest.update(np.round(np.asarray(scan.affine, dtype=float), 6).tobytes())
    digest.update(str(scan.data.shape).encode())
    return digest.hexdigest()
