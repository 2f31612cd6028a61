"""Bundled thalamic atlases, their registration templates and template landmarks.

Data live in the repository's ``atlases/`` and ``sample_data/`` folders (a wheel
carries them as ``fusplan/_bundled/``); nothing is ever downloaded. Each atlas
folder holds a label image, a ``labels.tsv`` table (index, name, abbreviation,
hemisphere) and a ``manifest.json`` naming its space, template, landmarks and
licence.
"""
from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .errors import FusplanInputError
from .spatial import resample
from .vocabulary import ATLASES, DEFAULT_ATLAS

#: The folder of every bundled atlas (:data:`fusplan.vocabulary.ATLASES`, a test keeps them equal).
ATLAS_FOLDERS = {"morel": "morel", "najdenovska": "najdenovska2018"}


def data_root() -> Path:
    """Folder that holds ``atlases/`` and ``sample_data/``.

    An installed wheel carries them inside the package (``fusplan/_bundled``);
    a source checkout (editable install) has them at the repository root.
    """
    bundled = Path(__file__).resolve().parent / "_bundled"
    if (bundled / "atlases").is_dir():
        return bundled
    return Path(__file__).resolve().parents[2]


def sample_scan_path(name: str = "ch2") -> Path:
    """Path of a bundled sample scan.

    Parameters
    ----------
    name : {"ch2", "ch2bet", "ch2_clinical"}
        Colin27 head with skull, its brain-extracted version, or the derived
        clinical-like copy (oblique, anisotropic, stored LPS, bias and noise).
    """
    files = {
        "ch2": "colin27/ch2.nii.gz",
        "ch2bet": "colin27/ch2bet.nii.gz",
        "ch2_clinical": "colin27/ch2_clinical_like.nii.gz",
    }
    if name not in files:
        raise FusplanInputError(f"unknown sample scan {name!r}; choose one of {', '.join(files)}")
    return data_root() / "sample_data" / files[name]


@dataclass(frozen=True)
class Label:
    """One row of an atlas label table."""

    index: int
    name: str
    abbreviation: str
    hemisphere: str


@dataclass(frozen=True)
class Atlas:
    """A label atlas defined on a template, with the template's landmarks.

    Attributes
    ----------
    name : str
        ``"morel"`` or ``"najdenovska"``.
    labels : ndarray of int
        Label image on the atlas grid.
    affine : (4, 4) ndarray
        Atlas voxel -> template world mm.
    label_table : tuple of Label
        Every non-zero label.
    space : str
        Template space the atlas is defined in.
    template_path, template_mask_path : Path or None
        Registration template (T1 with skull) and its brain mask.
    landmarks : dict of str to ndarray
        AFIDs fiducials (e.g. ``"AC"``, ``"PC"``) in template world mm.
    licence : str
    folder : Path
    """

    name: str
    labels: np.ndarray
    affine: np.ndarray
    label_table: tuple[Label, ...]
    space: str
    template_path: Path
    template_mask_path: Path | None
    landmarks: dict[str, np.ndarray]
    licence: str
    folder: Path

    @property
    def abbreviations(self) -> dict[int, str]:
        """Label index -> abbreviation (e.g. 5 -> ``"CL"``)."""
        return {label.index: label.abbreviation for label in self.label_table}

    def find_labels(self, name: str, side: str | None = None) -> list[Label]:
        """Labels whose abbreviation or full name matches ``name`` (case-insensitive).

        Parameters
        ----------
        name : str
            Abbreviation (``"CL"``) or full name (``"Central lateral nucleus"``).
        side : {"left", "right"}, optional
            Keep only that hemisphere.
        """
        wanted = name.strip().lower()
        found = [
            label
            for label in self.label_table
            if wanted in (label.abbreviation.lower(), label.name.lower())
            and (side is None or label.hemisphere == side)
        ]
        if not found:
            known = sorted({label.abbreviation for label in self.label_table})
            raise FusplanInputError(
                f"atlas {self.name!r} has no label {name!r}"
                + (f" on the {side} side" if side else "")
                + f"; known: {', '.join(known)}"
            )
        return found

    def load_template(self) -> tuple[np.ndarray, np.ndarray]:
        """Template intensities (float32) and affine."""
        return load_bundled_image(self.template_path, np.float32)

    def load_template_mask(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Template brain mask (bool) and affine, or None if the atlas has none."""
        if self.template_mask_path is None:
            return None
        data, affine = load_bundled_image(self.template_mask_path, np.float32)
        return data > 0.5, affine

    def template_brain_mask(self) -> np.ndarray:
        """Brain mask (bool) on the template's own grid.

        The bundled mask resampled onto the template grid when the atlas has one;
        otherwise derived from the grey and white matter maps beside the template
        (or, without them, from the template intensities), closed, filled and
        reduced to its largest connected part.
        """
        image, affine = self.load_template()
        loaded = self.load_template_mask()
        if loaded is not None:
            brain, mask_affine = loaded
            if brain.shape != image.shape or not np.allclose(mask_affine, affine):
                brain = resample(brain.astype(np.float32), mask_affine, image.shape, affine, order=1) > 0.5
            return brain
        folder = self.template_path.parent
        gm = sorted(folder.glob("*_gm_*.nii*"))
        wm = sorted(folder.glob("*_wm_*.nii*"))
        if gm and wm:
            tissue = sum(load_bundled_image(paths[0], np.float32)[0] for paths in (gm, wm))
            brain = tissue > 0.5 * float(np.percentile(tissue[tissue > 0], 50))
        else:
            brain = image > np.percentile(image[image > 0], 40)
        brain = ndimage.binary_closing(brain, iterations=3)
        brain = ndimage.binary_fill_holes(brain)
        labels, n = ndimage.label(brain)
        if n > 1:
            sizes = ndimage.sum(brain, labels, range(1, n + 1))
            brain = labels == (1 + int(np.argmax(sizes)))
        return brain


def load_bundled_image(path: Path, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Array (as ``dtype``) and affine of a NIfTI file bundled with fusplan (atlases, templates).

    Only for the project's own data, read as shipped; every file a user gives goes through
    the checked reader, :func:`fusplan.io.read_nifti`.
    """
    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=dtype), image.affine.astype(float)


def read_fcsv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a 3D Slicer markups file (``.fcsv``, RAS) into ``{label: xyz mm}``."""
    points = {}
    with open(path, newline="") as handle:
        rows = csv.reader(line for line in handle if not line.startswith("#"))
        for row in rows:
            if len(row) >= 13:
                points[row[12]] = np.array([float(row[1]), float(row[2]), float(row[3])])
    return points


def _read_label_table(path: Path) -> tuple[Label, ...]:
    with open(path, newline="") as handle:
        return tuple(
            Label(int(row["index"]), row["name"], row["abbreviation"], row["hemisphere"])
            for row in csv.DictReader(handle, delimiter="\t")
        )


@functools.lru_cache(maxsize=4)
def load_atlas(name: str = DEFAULT_ATLAS) -> Atlas:
    """Load a bundled atlas.

    Parameters
    ----------
    name : {"morel", "najdenovska"}
        ``morel``: Morel atlas on MNI152NLin6Asym (CC BY-NC-SA 4.0, non-commercial;
        the only open atlas with the central lateral nucleus as its own label).
        ``najdenovska``: Najdenovska 2018 on the ICBM 2009a template (CC BY-SA 4.0).

    Returns
    -------
    Atlas
        Treat its arrays as read-only: the result is cached.
    """
    key = name.strip().lower()
    if key not in ATLASES:
        raise FusplanInputError(f"unknown atlas {name!r}; choose one of {', '.join(ATLASES)}")
    atlases = data_root() / "atlases"
    folder = atlases / ATLAS_FOLDERS[key]
    manifest = json.loads((folder / "manifest.json").read_text())
    labels, affine = load_bundled_image(folder / manifest["labels_file"], np.int16)
    labels.setflags(write=False)
    mask = manifest.get("template_mask")
    return Atlas(
        name=key,
        labels=labels,
        affine=affine,
        label_table=_read_label_table(folder / manifest["label_table"]),
        space=manifest["space"],
        template_path=atlases / manifest["template"],
        template_mask_path=atlases / mask if mask else None,
        landmarks=read_fcsv(atlases / manifest["landmarks"]),
        licence=manifest["licence"],
        folder=folder,
    )
