"""The population skull: the bundled CT head template mapped into a subject.

The CT template (Muschelli 2020, CC BY-NC-SA 4.0, non-commercial) lives in
``atlases/ct/muschelli2020_2mm``. Its alignment to each atlas's registration template was
computed once, offline, by ``scripts/make_ct_template_transform.py`` and is shipped as
``template_to_atlas.json`` beside it. A subject point is mapped to the CT template by the
subject's own registration (subject -> atlas template, nonlinear) followed by the inverse
of the shipped affine, so the template is sampled once, with no intermediate resampling.

Diploe. Averaging 130 heads fills the diploe in (the raw template's clinical SDR is 0.998;
patients' SDRs are ~0.25-0.55). :class:`PopulationSkullCT` restores a tables-and-diploe
structure inside the template's bone: each bone voxel (>= 700 HU) gets its normalised depth
``t`` from the outer (0) to the inner (1) surface (Euclidean distances to the non-bone
regions outside and inside the skull); when sampled, HU is multiplied by
``1 - (1 - r) b(t)``, ``b`` 0 in the outer and inner quarters of the thickness (the tables,
left as the template has them), 1 in the middle quarter, linear between: a diploe whose
full width at half depth is half the thickness (a design choice, not a measurement),
``r`` the diploe ratio. The
clinical SDR the recipe then measures is close to ``r`` (reported as measured).

Patients' SDR: Tsai et al. 2021 (Front Neurosci 10.3389/fnins.2021.612940, 246 tremor
patients, Taiwan): 50 % below 0.40 and 19.19 % below 0.30; the normal distribution through
these two quantiles (:data:`SDR_DISTRIBUTION`, mean 0.40, sd 0.115) gives p10 / p50 / p90
= 0.25 / 0.40 / 0.55. The plan without a CT uses the median; energies at p10 and p90 are
reported as a band (:class:`.model.SdrBand`, ``skull.sdr_band``). Western cohorts sit higher (D'Souza et al. 2019,
Stanford: 28 % of 189 below 0.45; Ng et al. 2024, Boston: 31 of 270 below 0.40), so their
typical patient is in the upper half of this band.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from scipy import ndimage

from ..atlas import data_root, load_bundled_image
from ..errors import FusplanInputError
from ..execution import LruCache
from ..registration import Registration
from ..spatial import voxel_to_world
from .ct import SkullCT

#: Folder of the bundled CT head template.
CT_TEMPLATE_FOLDER = data_root() / "atlases" / "ct" / "muschelli2020_2mm"
#: Shipped CT template -> atlas template transforms (one per atlas name).
TRANSFORM_FILE = "template_to_atlas.json"
#: Shipped normalised bone depth of the template (:func:`compute_depth_fraction`).
DEPTH_FILE = "diploe_depth_2mm.nii.gz"
#: Warning the report carries when the skull is the population template.
POPULATION_WARNING = ("skull from the population CT template (Muschelli 2020) with a diploe restored at the "
                      "median patient SDR (Tsai 2021): SDR, transmission and energies are population figures, "
                      "not this patient's (see skull.sdr_band for p10-p90); give --ct for patient figures")
#: The template's background is 0 HU (not air) and its soft tissue ~20-80 HU.
TEMPLATE_SKIN_THRESHOLD_HU = 0.0
#: Bone of the template (the clinical bone threshold, physics.md).
TEMPLATE_BONE_HU = 700.0
#: Patients' clinical SDR: normal through Tsai 2021's quantiles (50 % < 0.40, 19.19 % < 0.30).
SDR_DISTRIBUTION = NormalDist(0.40, 0.10 / NormalDist().inv_cdf(1 - 0.1919))
SDR_SOURCE = "Tsai et al. 2021, Front Neurosci 10.3389/fnins.2021.612940 (246 patients: 50 % < 0.40, 19.19 % < 0.30)"


def sdr_percentile(percent: float) -> float:
    """The patients' SDR at ``percent`` (0-100) of :data:`SDR_DISTRIBUTION`."""
    return float(SDR_DISTRIBUTION.inv_cdf(percent / 100.0))


def diploe_multiplier(depth_fraction, diploe_ratio: float) -> np.ndarray:
    """HU factor at normalised depth ``t`` (0 outer, 1 inner surface): ``1 - (1 - r) b(t)``."""
    t = np.asarray(depth_fraction, float)
    bump = np.clip((np.minimum(t, 1.0 - t) - 0.25) * 8.0, 0.0, 1.0)
    return 1.0 - (1.0 - diploe_ratio) * bump


def compute_depth_fraction() -> np.ndarray:
    """Normalised depth of each template bone voxel: 0 at the outer surface, 1 at the inner
    one (next to the template's brain, ``template_2mm``); 0 outside the bone.

    Computed offline by ``scripts/make_ct_template_depth.py`` into :data:`DEPTH_FILE` (the
    two distance transforms cost ~1 s per process); a test checks the file against it.
    """
    data, affine = _template()
    bone = data >= TEMPLATE_BONE_HU
    inside = (load_bundled_image(CT_TEMPLATE_FOLDER / "template_2mm.nii.gz")[0] > 0) & ~bone
    labels, _ = ndimage.label(~bone & ~inside)
    faces = np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()])
    outside = np.isin(labels, faces[faces > 0])
    spacing = np.abs(np.linalg.svd(affine[:3, :3], compute_uv=False))
    d_out = ndimage.distance_transform_edt(~outside, sampling=spacing)
    d_in = ndimage.distance_transform_edt(~inside, sampling=spacing)
    half_voxel = spacing.mean() / 2  # distances between voxel centres -> to the surfaces
    d_out, d_in = np.maximum(d_out - half_voxel, 0.0), np.maximum(d_in - half_voxel, 0.0)
    with np.errstate(invalid="ignore"):
        t = np.where(bone, d_out / (d_out + d_in), 0.0)
    t[inside] = 1.0
    return np.nan_to_num(t, nan=0.5).astype(np.float32)


@lru_cache(maxsize=1)
def _depth_fraction() -> np.ndarray:
    """:func:`compute_depth_fraction`, as shipped in :data:`DEPTH_FILE`."""
    return load_bundled_image(CT_TEMPLATE_FOLDER / DEPTH_FILE)[0]


@dataclass(frozen=True, eq=False)
class PopulationSkullCT(SkullCT):
    """The CT template with a restored diploe (module docstring).

    Attributes
    ----------
    depth_fraction : ndarray
        Normalised bone depth on the template's grid.
    diploe_ratio : float
        HU of the diploe / HU of the tables (1: the raw template).
    template_samples : fusplan.execution.LruCache or None
        The raw template's HU and depth per subject point set already sampled (shared by
        the copies ``dataclasses.replace`` makes at other diploe ratios, which then rescale
        them); None: every call maps and samples.
    """

    depth_fraction: np.ndarray | None = None
    diploe_ratio: float = 1.0
    template_samples: LruCache | None = None

    def sample_hu(self, points_mm: np.ndarray) -> np.ndarray:
        """Trilinear HU at subject world points, the diploe scaled by ``diploe_ratio``; the
        template's background (0 HU) outside."""
        points = np.asarray(points_mm, dtype=float)
        hu, depth = self._template_hu_and_depth(points)
        if self.diploe_ratio != 1.0:
            hu = hu * diploe_multiplier(depth, self.diploe_ratio)
        return hu.reshape(points.shape[:-1])

    def _template_hu_and_depth(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw template's HU and normalised depth at subject world ``points`` (flat), from
        ``template_samples`` when these points were sampled before."""
        key = None
        if self.template_samples is not None:
            points = np.ascontiguousarray(points)
            key = hashlib.blake2b(points.tobytes(), digest_size=16, person=repr(points.shape).encode()[:16]).digest()
            cached = self.template_samples.get(key)
            if cached is not None:
                return cached
        if self.subject_to_ct is not None:
            points = self.subject_to_ct(points)
        index = voxel_to_world(self._inverse, points.reshape(-1, 3)).T
        samples = (ndimage.map_coordinates(self.data, index, order=1, mode="constant", cval=0.0),
                   ndimage.map_coordinates(self.depth_fraction, index, order=1, mode="constant", cval=0.0))
        if key is not None:
            for array in samples:
                array.flags.writeable = False  # shared by the callers that ask again
            self.template_samples.put(key, samples)
        return samples


@lru_cache(maxsize=1)
def _template() -> tuple[np.ndarray, np.ndarray]:
    return load_bundled_image(CT_TEMPLATE_FOLDER / "template_with_skull_2mm.nii.gz")


def ct_template_to_atlas_mm(atlas: str) -> np.ndarray:
    """The shipped 4x4 affine mapping CT template world mm to ``atlas``'s template world mm."""
    path = CT_TEMPLATE_FOLDER / TRANSFORM_FILE
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FusplanInputError(f"{path}: cannot read the CT template transform ({error})") from None
    if atlas not in entries:
        raise FusplanInputError(f"{path}: no CT template transform for atlas {atlas!r}")
    return np.asarray(entries[atlas]["ct_template_to_atlas_mm"], dtype=float)


def population_skull(registration: Registration, sdr: float | None = None) -> PopulationSkullCT:
    """The CT template mapped into the subject of ``registration``, with a restored diploe.

    Parameters
    ----------
    registration : fusplan.registration.Registration
        The subject's atlas registration (atlas template -> subject), as the planner
        already computed it; affine-only registrations work too.
    sdr : float, optional
        Diploe ratio in (0, 1] (default: the median patient of :data:`SDR_DISTRIBUTION`);
        1 gives the raw template.

    Returns
    -------
    PopulationSkullCT
        ``source="population template"``, sampled at subject world mm through
        ``subject -> atlas template -> CT template``.
    """
    ratio = sdr_percentile(50) if sdr is None else float(sdr)
    if not (math.isfinite(ratio) and 0 < ratio <= 1):
        raise FusplanInputError(f"population skull SDR must be in (0, 1] (got {sdr!r})")
    data, affine = _template()
    atlas_to_ct = np.linalg.inv(ct_template_to_atlas_mm(registration.atlas))

    def subject_to_ct(points_mm: np.ndarray) -> np.ndarray:
        return registration.subject_to_template(points_mm) @ atlas_to_ct[:3, :3].T + atlas_to_ct[:3, 3]

    return PopulationSkullCT(data=data, affine=affine, source="population template", subject_to_ct=subject_to_ct,
                             skin_threshold_hu=TEMPLATE_SKIN_THRESHOLD_HU, path=CT_TEMPLATE_FOLDER,
                             depth_fraction=_depth_fraction(), diploe_ratio=ratio,
                             # the SDR band samples this skull at other diploe ratios on the plan's points
                             # (dataclasses.replace keeps the cache): map and sample each point set once
                             template_samples=LruCache(max_entries=8))
