"""Compute the population skull's normalised bone depth once, offline, and ship it.

:class:`fusplan.skull.population.PopulationSkullCT` restores a diploe inside the CT
template's bone from each bone voxel's normalised depth (0 at the outer surface, 1 at the
inner one). Two Euclidean distance transforms of the template give it
(:func:`fusplan.skull.population.compute_depth_fraction`); they cost about a second per
plan, so this script writes the result beside the template as
``atlases/ct/muschelli2020_2mm/diploe_depth_2mm.nii.gz`` (float32, the template's grid and
affine). ``tests/test_skull_population.py`` checks the file against the function.

Usage::

    python scripts/make_ct_template_depth.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fusplan.skull.population import CT_TEMPLATE_FOLDER, DEPTH_FILE, _template, compute_depth_fraction  # noqa: E402 (after the path)


def main() -> None:
    depth = compute_depth_fraction()
    image = nib.Nifti1Image(depth, _template()[1])
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    path = CT_TEMPLATE_FOLDER / DEPTH_FILE
    image.to_filename(str(path))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
