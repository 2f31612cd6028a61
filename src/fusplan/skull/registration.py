"""Rigid CT -> MR registration (dipy, mutual information), saved and reused as ``.npz``."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import FusplanInputError
from ..io import Scan, atomic_output, voxel_to_world
from ..template import to_lattice
from .ct import SkullCT

_FORMAT_VERSION = 1


def ct_fingerprint(ct: SkullCT) -> str:
    """SHA-1 of a CT's data and affine (identifies the CT a registration belongs to)."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(ct.data, dtype=np.float32).tobytes())
    digest.update(np.round(np.asarray(ct.affine, dtype=float), 6).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class CtRegistration:
    """A rigid map between the MR scan's world and the CT's world.

    Attributes
    ----------
    mr_to_ct_mm : (4, 4) ndarray
        MR (subject) world RAS mm -> CT world RAS mm.
    ct_fingerprint, scan_fingerprint : str
        What the registration was computed for (a result never outlives its inputs).
    metric : float
        Final mutual-information cost (dipy's negative MI; lower is better).
    time_s : float
    """

    mr_to_ct_mm: np.ndarray
    ct_fingerprint: str
    scan_fingerprint: str
    metric: float
    time_s: float

    def apply(self, ct: SkullCT) -> SkullCT:
        """``ct`` made samplable at MR world mm through this registration."""
        if ct_fingerprint(ct) != self.ct_fingerprint:
            raise FusplanInputError(f"{ct.name}: the CT -> MR registration was computed for another CT")
        matrix = self.mr_to_ct_mm

        def subject_to_ct(points_mm: np.ndarray) -> np.ndarray:
            return np.asarray(points_mm, float) @ matrix[:3, :3].T + matrix[:3, 3]

        return replace(ct, subject_to_ct=subject_to_ct)

    def matches(self, ct: SkullCT, scan: Scan) -> bool:
        """True if computed for this CT and this scan."""
        from ..registration import scan_fingerprint

        return self.ct_fingerprint == ct_fingerprint(ct) and self.scan_fingerprint == scan_fingerprint(scan)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"method": "dipy rigid, mutual information", "metric": round(self.metric, 4),
                "time_s": round(self.time_s, 2), "mr_to_ct_mm": np.round(self.mr_to_ct_mm, 4).tolist()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``.npz`` atomically; reload with :func:`load_ct_registration`."""
        path = Path(path)
        meta = {"format_version": _FORMAT_VERSION, "ct_fingerprint": self.ct_fingerprint,
                "scan_fingerprint": self.scan_fingerprint, "metric": self.metric, "time_s": self.time_s}
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, mr_to_ct_mm=self.mr_to_ct_mm, meta=np.array(json.dumps(meta)))
        return path


def load_ct_registration(path: str | os.PathLike) -> CtRegistration:
    """Read a registration written by :meth:`CtRegistration.save`.

    Raises
    ------
    FusplanInputError
        Missing, unreadable or from another format version.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            matrix = np.asarray(data["mr_to_ct_mm"], float)
    except FileNotFoundError:
        raise FusplanInputError(f"{path}: no such CT registration file") from None
    except (OSError, KeyError, ValueError) as error:
        raise FusplanInputError(f"{path}: not a fusplan CT registration file ({error})") from None
    if meta.get("format_version") != _FORMAT_VERSION:
        raise FusplanInputError(f"{path}: CT registration format {meta.get('format_version')} is not supported")
    return CtRegistration(mr_to_ct_mm=matrix, ct_fingerprint=meta["ct_fingerprint"],
                          scan_fingerprint=meta["scan_fingerprint"], metric=float(meta["metric"]),
                          time_s=float(meta["time_s"]))


def register_ct_to_mr(ct: SkullCT, scan: Scan, *, spacing_mm: float = 3.0, progress=None) -> CtRegistration:
    """Rigidly register a head CT to the subject's MR by mutual information (dipy).

    Centre of mass, then translation, then rigid (6 parameters, about the MR's centre), on
    both images resampled onto the ``spacing_mm`` world lattice
    (:func:`fusplan.template.to_lattice`; 3 mm: the CT-MR rigid fit is driven by the head
    outline and the skull, well sampled at that scale; about 1 mm accuracy).

    Parameters
    ----------
    ct : SkullCT
        From :func:`fusplan.skull.ct.load_ct`.
    scan : fusplan.io.Scan
        The MR the plan is made on.
    spacing_mm : float
    progress : callable(fraction, message), optional

    Returns
    -------
    CtRegistration
    """
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric, transform_centers_of_mass
    from dipy.align.transforms import RigidTransform3D, TranslationTransform3D

    from ..registration import scan_fingerprint

    start = time.perf_counter()
    static, static_affine = to_lattice(np.asarray(scan.data, np.float32), scan.affine, spacing_mm)
    moving, moving_affine = to_lattice(np.clip(ct.data, -1000.0, 2000.0), ct.affine, spacing_mm, cval=-1000.0)
    # optimise about the MR's centre: rotations about a far-away world origin (a CT's origin
    # is often a corner) couple with translation and stall the optimiser
    centre = voxel_to_world(static_affine, (np.array(static.shape) - 1) / 2)
    shift = np.eye(4)
    shift[:3, 3] = -centre
    static_affine, moving_affine = shift @ static_affine, shift @ moving_affine
    metric = MutualInformationMetric(nbins=32, sampling_proportion=None)
    registration = AffineRegistration(metric=metric, level_iters=[200, 50], sigmas=[1.0, 0.0], factors=[2, 1],
                                      verbosity=0)
    current = transform_centers_of_mass(static, static_affine, moving, moving_affine)
    stages = (TranslationTransform3D(), RigidTransform3D())
    for k, transform in enumerate(stages):
        if progress is not None:
            progress(k / len(stages), f"CT -> MR registration: {transform.__class__.__name__[:-11].lower()}")
        current = registration.optimize(static, moving, transform, None, static_grid2world=static_affine,
                                        moving_grid2world=moving_affine, starting_affine=current.affine)
    if progress is not None:
        progress(1.0, "CT -> MR registration done")
    mr_to_ct = np.linalg.inv(shift) @ np.asarray(current.affine, float) @ shift
    return CtRegistration(mr_to_ct_mm=mr_to_ct, ct_fingerprint=ct_fingerprint(ct),
                          scan_fingerprint=scan_fingerprint(scan), metric=float(metric.metric_val),
                          time_s=time.perf_counter() - start)
