"""The population skull: the bundled CT head template mapped into a subject.

The CT template (Muschelli 2020, CC BY-NC-SA 4.0, non-commercial) lives in
``atlases/ct/muschelli2020_2mm``. Its alignment to each atlas's registration template was
computed once, offline, by ``scripts/make_ct_template_transform.py`` and is shipped as
``template_to_atlas.json`` beside it. A subject point is mapped to the CT template by the
subject's own registration (subject -> atlas template, nonlinear) followed by the inverse
of the shipped affine, so the template is sampled once, with no intermediate resampling.
"""

from __future__ import annotations

import json
from functools import lru_cache

import nibabel as nib
import numpy as np

from ..atlas import data_root
from ..errors import FusplanInputError
from ..registration import Registration
from .ct import SkullCT

#: Folder of the bundled CT head template.
CT_TEMPLATE_FOLDER = data_root() / "atlases" / "ct" / "muschelli2020_2mm"
#: Shipped CT template -> atlas template transforms (one per atlas name).
TRANSFORM_FILE = "template_to_atlas.json"
#: Warning the report carries when the skull is the population template.
POPULATION_WARNING = ("skull from the population CT template (Muschelli 2020): SDR, transmission and "
                      "energies are population figures, not this patient's (averaging 130 heads fills in the diploe, "
                      "so its SDR is near 1); give --ct for patient figures")
#: The template's background is 0 HU (not air) and its soft tissue ~20-80 HU.
TEMPLATE_SKIN_THRESHOLD_HU = 0.0


@lru_cache(maxsize=1)
def _template() -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(str(CT_TEMPLATE_FOLDER / "template_with_skull_2mm.nii.gz"))
    return np.asarray(image.dataobj, dtype=np.float32), np.asarray(image.affine, dtype=float)


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


def population_skull(registration: Registration) -> SkullCT:
    """The CT template mapped into the subject of ``registration``.

    Parameters
    ----------
    registration : fusplan.registration.Registration
        The subject's atlas registration (atlas template -> subject), as the planner
        already computed it; affine-only registrations work too.

    Returns
    -------
    SkullCT
        ``source="population template"``, sampled at subject world mm through
        ``subject -> atlas template -> CT template``.
    """
    data, affine = _template()
    atlas_to_ct = np.linalg.inv(ct_template_to_atlas_mm(registration.atlas))

    def subject_to_ct(points_mm: np.ndarray) -> np.ndarray:
        atlas_points = registration.subject_to_template(points_mm)
        return atlas_points @ atlas_to_ct[:3, :3].T + atlas_to_ct[:3, 3]

    return SkullCT(data=data, affine=affine, source="population template", subject_to_ct=subject_to_ct,
                   skin_threshold_hu=TEMPLATE_SKIN_THRESHOLD_HU, path=CT_TEMPLATE_FOLDER)
