"""Rigid CT -> MR registration (dipy, mutual information), saved and reused as ``.npz``."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import FusplanInputError
from ..io import Scan, atomic_output
from ..spatial import voxel_to_world
from ..registration_file import CT_REGISTRATION, read_checked_npz, write_checked_npz
from ..template import to_lattice
from .ct import SkullCT


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
        """Write to ``.npz`` atomically with a format version and checksums
        (:data:`fusplan.registration_file.CT_REGISTRATION`); reload with :func:`load_ct_registration`."""
        path = Path(path)
        meta = {"ct_fingerprint": self.ct_fingerprint, "scan_fingerprint": self.scan_fingerprint,
                "metric": float(self.metric), "time_s": float(self.time_s)}
        with atomic_output(path) as tmp:
            write_checked_npz(tmp, CT_REGISTRATION, {"mr_to_ct_mm": np.asarray(self.mr_to_ct_mm, float)}, meta)
        return path


def load_ct_registration(path: str | os.PathLike, ct: SkullCT | None = None,
                         scan: Scan | None = None) -> CtRegistration:
    """Read and validate a CT registration written by :meth:`CtRegistration.save`.

    Parameters
    ----------
    path : str or path-like
    ct, scan : optional
        When given, the registration must have been computed for this CT / this scan.

    Raises
    ------
    FusplanInputError
        One line naming the registration file (never the CT): missing, not a CT
        registration archive, damaged or edited (checksum), an older or newer format,
        NaN/Inf, a matrix that is not rigid, or computed for another CT or scan.
    """
    from ..registration import scan_fingerprint

    expected = {}
    if ct is not None:
        expected["ct_fingerprint"] = ct_fingerprint(ct)
    if scan is not None:
        expected["scan_fingerprint"] = scan_fingerprint(scan)
    arrays, meta = read_checked_npz(path, CT_REGISTRATION, expected)
    return CtRegistration(mr_to_ct_mm=arrays["mr_to_ct_mm"].astype(float), ct_fingerprint=meta["ct_fingerprint"],
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
