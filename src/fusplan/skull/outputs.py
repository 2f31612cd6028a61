"""The skull files of a plan's report (written by :func:`fusplan.report.write_report`).

- ``elements[_<side>].csv``: one row per element (:func:`.model.write_elements_csv`);
- ``ct.nii.gz``: the (pseudo-)CT in subject space, HU (int16), on the scan's voxel grid
  (:func:`scan_ct_grid`: the population template, a 2 mm image, on every n-th voxel so its
  voxels are about 2 mm; a patient CT at the scan's resolution), or in the phantom on a
  2 mm box of :data:`PHANTOM_CT_EXTENT_MM` around the focus; one file, as the skull is the subject's, not a side's;
- ``skull[_<side>].png`` (with figures): the element map (:func:`.figure.save_skull_figure`).

``_<side>`` is omitted in the phantom, as for the other report files.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping

import numpy as np

from .. import formatting as fmt
from .ct import SkullCT, resample_to_grid
from .model import SkullModel, write_elements_csv

#: Side of the cubic box the phantom's CT is written on (mm): holds a 150 mm array's head.
PHANTOM_CT_EXTENT_MM = 200.0
#: Voxel of that box (mm).
PHANTOM_CT_SPACING_MM = 2.0


def phantom_ct_grid(centre_mm) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and voxel -> world affine of the phantom's CT box (RAS axes) around ``centre_mm``."""
    n = int(round(PHANTOM_CT_EXTENT_MM / PHANTOM_CT_SPACING_MM)) + 1
    affine = np.diag([PHANTOM_CT_SPACING_MM] * 3 + [1.0])
    affine[:3, 3] = np.asarray(centre_mm, float) - PHANTOM_CT_SPACING_MM * (n - 1) / 2
    return (n, n, n), affine


#: Voxel of the population template (mm): finer output grids add no information.
TEMPLATE_SPACING_MM = 2.0


def scan_ct_grid(shape, affine, ct: SkullCT) -> tuple[tuple[int, int, int], np.ndarray]:
    """The scan's voxel grid to write ``ct`` on: every n-th voxel for the population template
    (n = floor(2 mm / smallest scan voxel), at least 1), every voxel for a patient CT."""
    from ..spatial import voxel_sizes_mm

    affine = np.asarray(affine, float)
    step = 1
    if ct.source != "ct":
        step = max(1, int(TEMPLATE_SPACING_MM // float(np.min(voxel_sizes_mm(affine)))))
    shape = tuple(int(-(-n // step)) for n in shape[:3])
    return shape, affine @ np.diag([step, step, step, 1.0])


def write_skull_outputs(models: Mapping[str | None, SkullModel], ct: SkullCT, folder: str | Path, *,
                        ct_shape: tuple[int, int, int], ct_affine: np.ndarray,
                        xform_codes: tuple[int, int] | None = None, figures: bool = True) -> list[Path]:
    """Write the skull files of every side into ``folder``; returns their paths.

    Parameters
    ----------
    models : mapping side -> SkullModel
        ``None`` as the key in the phantom.
    ct : SkullCT
        The CT the models were traced through (samplable at subject world mm).
    folder : path
    ct_shape, ct_affine
        Subject voxel grid (voxel -> world RAS mm) to write the CT on.
    xform_codes : (sform_code, qform_code), optional
        Those of the scan, so the CT overlays in any viewer.
    figures : bool
        Also write the element-map PNGs.
    """
    from ..io import save_nifti
    from .figure import save_skull_figure

    folder = Path(folder)
    written = []
    for side, model in models.items():
        suffix = f"_{side}" if side else ""
        written.append(write_elements_csv(model, folder / f"elements{suffix}.csv"))
        if figures:
            written.append(save_skull_figure(model, folder / f"skull{suffix}.png"))
    hu = np.clip(np.rint(resample_to_grid(ct, ct_shape, ct_affine)), -1024, 3071).astype(np.int16)
    descrip = f"{'pseudo-CT, population template' if ct.source != 'ct' else 'CT'} in subject space, HU (fusplan)"
    written.append(save_nifti(hu, ct_affine, folder / "ct.nii.gz", xform_codes=xform_codes, descrip=descrip))
    return written


def skull_blocks(report: dict) -> dict:
    """A JSON report's skull blocks by side (``{None: block}`` without sides; ``{}`` without a skull)."""
    return report.get("skull_by_side") or ({None: report["skull"]} if "skull" in report else {})


def skull_markdown(report: dict) -> list[str]:
    """The ``## Skull`` section of ``summary.md`` from a JSON report ([] without a skull block)."""
    blocks = skull_blocks(report)
    if not blocks:
        return []
    lines = ["## Skull", "", "| side | source | SDR | active elements | mean incidence deg | mean thickness mm | "
             "energy transmission | absorbed in skull | phase correction |", "|" + "---|" * 9]
    warnings = []
    for side, b in blocks.items():
        lines.append(f"| {side or ''} | {b['source']} | {fmt.ratio(b['sdr'])} | {b['active_elements']}/{b['elements']} | "
                     f"{fmt.angle(b['mean_incidence_deg'])} | {fmt.length(b['mean_thickness_mm'])} | "
                     f"{fmt.fraction(b['energy_transmission'])} | {fmt.fraction(b.get('energy_absorbed_in_skull'))} | "
                     f"{b['phase_correction']} |")
        warnings += [w for w in b.get("warnings", []) if w not in warnings]
    lines.append("")
    for side, b in blocks.items():
        band = b.get("sdr_band")
        if band:
            rows = band["percentiles"]
            energies = ", ".join(f"{p} (SDR {r['sdr']:.2f}): {r['treatment_energy_kj'][0]}-{r['treatment_energy_kj'][1]} kJ"
                                 for p, r in rows.items() if "treatment_energy_kj" in r)
            lines += [f"Without a CT{f' ({side})' if side else ''}, treatment energies over the patients' SDR "
                      f"({band['distribution']}): {energies}. {band['caveat']}.", ""]
    if warnings:
        lines += [f"- warning: {w}" for w in warnings] + [""]
    return lines


__all__ = ["write_skull_outputs", "skull_blocks", "skull_markdown", "phantom_ct_grid", "scan_ct_grid",
           "PHANTOM_CT_EXTENT_MM", "PHANTOM_CT_SPACING_MM"]
