"""Align the bundled CT head template to each atlas's registration template (run offline, once).

The population skull (:mod:`fusplan.skull.population`) maps the CT template into a subject
through ``CT template -> atlas template`` (this script's output) composed with the
subject's own ``atlas template -> subject`` registration. This script computes the first
link with dipy (mutual information, which copes with CT against T1: centre of mass,
translation, rigid, then full affine) and writes
``atlases/ct/muschelli2020_2mm/template_to_atlas.json``.

Usage::

    python scripts/make_ct_template_transform.py [morel] [najdenovska]

Deterministic (dense MI sampling); templates finer than 2 mm are registered at 2 mm.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from dipy.align.imaffine import AffineRegistration, MutualInformationMetric, transform_centers_of_mass
from dipy.align.transforms import AffineTransform3D, RigidTransform3D, TranslationTransform3D
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fusplan.atlas import ATLAS_FOLDERS, load_atlas  # noqa: E402
from fusplan.spatial import resample, voxel_sizes_mm  # noqa: E402
from fusplan.skull.population import CT_TEMPLATE_FOLDER, TRANSFORM_FILE  # noqa: E402


def register_ct_template(atlas_name: str) -> dict:
    """MI registration of the CT template (moving) to ``atlas_name``'s T1 template (static)."""
    atlas = load_atlas(atlas_name)
    static, static_affine = atlas.load_template()
    if voxel_sizes_mm(static_affine).min() < 2.0:  # the CT template is 2 mm: register at 2 mm
        shape = tuple(int(np.ceil(n * s / 2.0)) for n, s in zip(static.shape, voxel_sizes_mm(static_affine)))
        grid = static_affine.copy()
        grid[:3, :3] = static_affine[:3, :3] / voxel_sizes_mm(static_affine) * 2.0
        static, static_affine = resample(static, static_affine, shape, grid), grid
    ct_image = nib.load(CT_TEMPLATE_FOLDER / "template_with_skull_2mm.nii.gz")
    hu = np.asarray(ct_image.dataobj, dtype=np.float32)
    # the template's background is exactly 0 HU, like brain: make it air so MI sees the head outline
    moving = np.clip(np.where(hu == 0, -1000.0, hu), -1000.0, 1600.0)
    moving_affine = ct_image.affine
    start = time.perf_counter()
    metric = MutualInformationMetric(nbins=32, sampling_proportion=None)
    registration = AffineRegistration(metric=metric, level_iters=[400, 200, 50], sigmas=[3.0, 1.0, 0.0],
                                      factors=[4, 2, 1], verbosity=0)
    current = transform_centers_of_mass(static, static_affine, moving, moving_affine)
    for transform in (TranslationTransform3D(), RigidTransform3D(), AffineTransform3D()):
        current = registration.optimize(static, moving, transform, None, static_grid2world=static_affine,
                                        moving_grid2world=moving_affine, starting_affine=current.affine)
    atlas_to_ct = np.asarray(current.affine, dtype=float)
    ct_head = current.transform(moving, interpolation="nearest") > -500
    mr_head = ndimage.binary_fill_holes(static > 0.1 * np.percentile(static, 99))
    head_dice = 2 * np.sum(ct_head & mr_head) / (ct_head.sum() + mr_head.sum())
    return {
        "atlas_template": str(atlas.template_path.relative_to(ROOT / "atlases")),
        "space": atlas.space,
        "ct_template_to_atlas_mm": np.linalg.inv(atlas_to_ct).round(6).tolist(),
        "method": "dipy AffineRegistration, mutual information (32 bins), centre of mass -> "
                  "translation -> rigid -> affine, CT background (0) set to -1000 HU, clipped to 1600 HU",
        "time_s": round(time.perf_counter() - start, 1),
        "head_outline_dice": round(float(head_dice), 3),
    }


#: Atlases whose bundled template is brain-only: a head CT cannot be registered to it, so they
#: reuse the MNI152NLin6Asym (Morel) transform; the MNI152 spaces differ by a few mm.
BRAIN_ONLY_TEMPLATES = {"najdenovska": "morel"}


def reused_entry(name: str, source: str, result: dict) -> dict:
    """The transform of ``source`` reused for ``name`` (whose template has no skull)."""
    if source not in result:
        raise SystemExit(f"compute {source} first: {name} reuses its transform")
    atlas = load_atlas(name)
    return {**result[source], "atlas_template": str(atlas.template_path.relative_to(ROOT / "atlases")),
            "space": atlas.space,
            "note": f"{name}'s template is brain-only, so the CT head cannot be registered to it; the "
                    f"{result[source]['space']} transform of {source!r} is reused (MNI152 spaces agree "
                    "within a few mm)"}


def main(names: list[str]) -> None:
    out = CT_TEMPLATE_FOLDER / TRANSFORM_FILE
    for name in names:
        entry = register_ct_template(name) if name not in BRAIN_ONLY_TEMPLATES else None
        result = json.loads(out.read_text()) if out.exists() else {}  # re-read: keep other atlases
        result[name] = entry or reused_entry(name, BRAIN_ONLY_TEMPLATES[name], result)
        result = {key: result[key] for key in ATLAS_FOLDERS if key in result}
        out.write_text(json.dumps(result, indent=2) + "\n")  # written after each atlas
        print(name, np.round(result[name]["ct_template_to_atlas_mm"], 3).tolist())
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(ATLAS_FOLDERS, key=lambda name: name in BRAIN_ONLY_TEMPLATES))
