"""Derive ``colin27/ch2_clinical_like.nii.gz`` from ``colin27/ch2.nii.gz``, reproducibly.

Run from the repository root:  python sample_data/make_clinical_like.py
The same anatomy on an oblique 1 x 1 x 2 mm grid stored LPS, with a bias field
and noise (seed 0); world positions of anatomy are unchanged. Licence: that of
ch2 (see colin27/Colin27_MNI_LICENSE.txt).
"""
from pathlib import Path

import nibabel as nib
import numpy as np

from fusplan.io import atomic_output, load_scan
from fusplan.samples import make_clinical_like

HERE = Path(__file__).resolve().parent


def main() -> None:
    derived = make_clinical_like(load_scan(HERE / "colin27" / "ch2.nii.gz"), seed=0)
    image = nib.Nifti1Image(np.round(derived.data).astype(np.int16), derived.affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(derived.affine, code=1)
    image.set_qform(derived.affine, code=1)
    with atomic_output(HERE / "colin27" / "ch2_clinical_like.nii.gz") as tmp:
        nib.save(image, tmp)


if __name__ == "__main__":
    main()
