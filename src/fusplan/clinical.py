"""Regions of the simulated dose and temperature that clinical images are compared with.

Published series do not read lesions off the 240 CEM43 contour a console draws: they
measure them on T1 or T2 MRI one or two days later, and each of those sizes matched a
different dose or temperature contour. :data:`CLINICAL_REGIONS` lists them with what
they correspond to and their source; :func:`clinical_regions` measures all of them on a
simulated side (dose map and peak-temperature map) and :func:`lesion_model` gives the
report's ``lesion_model`` block naming the default comparison (day-1 T1).

Two bases. Every region is measured on the true field and on the simulated MR
thermometry (dose and peak of the temperature averaged over a thermometry voxel and
frame, :mod:`fusplan.bioheat.displayed`). The thresholds were made on thermometry
(Huang 2018 accumulated the dose from thermometry maps; Bond & Elias 2018 read maximum
temperatures on them), so the default comparison is the thermometry basis
(:data:`DEFAULT_BASIS`); the true field is kept for the console's own contours and for
continuity with earlier reports.

Sources (docs/physics.md, "Lesion size vs clinical imaging"):

- Huang et al. 2018, JMRI (36 Vim patients, 3 T): day-1 lesions 6.2 +/- 1.3 mm on T2 and
  5.3 +/- 1.2 mm on T1 were best matched by the 100 CEM43 (T2) and 200 CEM43 (T1)
  accumulated-dose contours.
- Bond & Elias 2018, Neurosurg Focus 44:E5 (63 lesions): the 51 C maximum-temperature
  contour matched the day-1 T2 diameter best, better than 240 CEM43 or 54 C.
- Sapareto & Dewey 1984 / console practice: 240 CEM43 (necrosis) and 17 CEM43 (outer
  edge of reversible damage) are the contours consoles draw.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Mapping

import numpy as np

from .lesion import measure_isotherm, measure_lesion
from .thermometry import resolve_thermometry
from .thresholds import ABLATION_CEM43, DAY1_T1_CEM43, DAY1_T2_CEM43, INJURY_CEM43, MEANINGS

__all__ = [
    "ClinicalRegion",
    "CLINICAL_REGIONS",
    "DEFAULT_COMPARISON",
    "DEFAULT_BASIS",
    "BASES",
    "RegionMeasurement",
    "clinical_regions",
    "lesion_model",
    "corresponds_to",
]


@dataclass(frozen=True)
class ClinicalRegion:
    """A dose (``kind="dose"``, CEM43) or maximum-temperature (``kind="isotherm"``, C) contour."""

    key: str
    kind: str
    level: float
    corresponds_to: str
    source: str


#: In ascending level within each kind: the order of ``lesions[]`` everywhere (plan and calibrated prediction).
CLINICAL_REGIONS: tuple[ClinicalRegion, ...] = (
    ClinicalRegion("cem43_17", "dose", INJURY_CEM43, MEANINGS[INJURY_CEM43], "Huang 2018; console practice"),
    ClinicalRegion("cem43_100", "dose", DAY1_T2_CEM43, MEANINGS[DAY1_T2_CEM43], "Huang et al. 2018, JMRI, PMC6181766"),
    ClinicalRegion("cem43_200", "dose", DAY1_T1_CEM43, MEANINGS[DAY1_T1_CEM43], "Huang et al. 2018, JMRI, PMC6181766"),
    ClinicalRegion("cem43_240", "dose", ABLATION_CEM43, MEANINGS[ABLATION_CEM43], "Sapareto & Dewey 1984; Huang 2018"),
    ClinicalRegion("max_51c", "isotherm", 51.0, "day-1 T2 lesion (Bond & Elias 2018)",
                   "Bond & Elias 2018, Neurosurg Focus 44:E5"),
    ClinicalRegion("max_54c", "isotherm", 54.0, "54 C maximum-temperature isotherm (Bond & Elias 2018)",
                   "Bond & Elias 2018, Neurosurg Focus 44:E5"),
)

#: The region a predicted lesion is compared with by default: the day-1 T1 lesion.
DEFAULT_COMPARISON = "cem43_200"

#: The basis a predicted lesion is compared with by default (see :data:`BASES`).
DEFAULT_BASIS = "thermometry"
#: What each basis measures.
BASES = {
    "true field": "dose and maximum temperature of the simulated (unaveraged) temperature field",
    "thermometry": "dose and maximum temperature of the simulated MR thermometry: the temperature averaged over "
                   "a thermometry voxel and frame (the protocol's thermometry block, else 1.1 x 1.1 x 3 mm, 3.5 s)",
}
_BASIS_REASON = ("the day-1 thresholds were fitted on MR thermometry: Huang 2018 accumulated CEM43 from "
                 "thermometry maps, Bond & Elias 2018 read maximum temperatures on them, so a simulated lesion is "
                 "compared with day-1 MRI on the simulated thermometry")

_BY_KEY = {r.key: r for r in CLINICAL_REGIONS}


def corresponds_to(threshold_cem43: float) -> str | None:
    """What a dose threshold corresponds to clinically (None if it is not in the table)."""
    return MEANINGS.get(float(threshold_cem43))


@dataclass
class RegionMeasurement:
    """Size of one clinically comparable region on one side.

    The sizes are those of ``basis`` (``"true field"`` unless said otherwise);
    ``thermometry`` holds the same region measured on the simulated thermometry when it
    was given.
    """

    region: ClinicalRegion
    side: str | None
    lr_mm: float
    ap_mm: float
    si_mm: float
    volume_mm3: float
    equivalent_diameter_mm: float
    nuclei: dict
    basis: str = "true field"
    thermometry: RegionMeasurement | None = None

    def sizes(self) -> dict:
        """The size keys and ``basis``."""
        return {"basis": self.basis, "lr_mm": self.lr_mm, "ap_mm": self.ap_mm, "si_mm": self.si_mm,
                "volume_mm3": self.volume_mm3, "equivalent_diameter_mm": self.equivalent_diameter_mm,
                "nuclei": self.nuclei}

    def to_dict(self) -> dict:
        """A ``lesions[]`` entry (dose regions) or an ``isotherms[]`` entry (contract).

        The top-level sizes are the true field's (as always); ``thermometry`` gives the
        same keys on the simulated thermometry.
        """
        out = {"side": self.side} if self.side is not None else {}
        if self.region.kind == "dose":
            out["threshold_cem43"] = self.region.level
        else:
            out["max_temperature_c"] = self.region.level
        out.update(corresponds_to=self.region.corresponds_to, source=self.region.source, **self.sizes())
        if self.thermometry is not None:
            out["thermometry"] = self.thermometry.sizes()
        return out


def clinical_regions(dose_cem43: np.ndarray, peak_temperature_c: np.ndarray, grid, *,
                     baseline_temperature_c: float = 37.0, side: str | None = None,
                     labels: np.ndarray | None = None, label_names: Mapping | None = None,
                     nucleus_volumes_mm3: Mapping | None = None,
                     keys=None, thermometry_dose_cem43: np.ndarray | None = None,
                     thermometry_peak_c: np.ndarray | None = None) -> list[RegionMeasurement]:
    """Measure every region of :data:`CLINICAL_REGIONS` (or those named in ``keys``).

    Parameters
    ----------
    dose_cem43, peak_temperature_c : ndarray, shape ``grid.shape``
        Accumulated CEM43 and maximum temperature (C) over the protocol (a side's
        ``dose_cem43`` and ``peak_temperature_c``).
    grid : fusplan.grid.Grid
    baseline_temperature_c : float
        Tissue baseline; isotherms are measured on the rise above it.
    side, labels, label_names, nucleus_volumes_mm3
        As for :func:`fusplan.lesion.measure_lesion`.
    keys : iterable of str, optional
        Region keys (default: all).
    thermometry_dose_cem43, thermometry_peak_c : ndarray, optional
        The same maps on the simulated thermometry (a
        :class:`fusplan.bioheat.ThermalHistory`'s ``thermometry_dose_cem43`` and
        ``thermometry_peak_c``): each region is then also measured on them
        (``RegionMeasurement.thermometry``).
    """
    chosen = [_BY_KEY[k] for k in keys] if keys is not None else list(CLINICAL_REGIONS)
    extra = {} if nucleus_volumes_mm3 is None else {"nucleus_volumes_mm3": nucleus_volumes_mm3}

    def measure(region, dose, peak, basis):
        if region.kind == "dose":
            size = measure_lesion(dose, grid, region.level, labels, label_names, **extra)
        else:
            size = measure_isotherm(peak, grid, region.level, baseline_temperature_c, labels, label_names, **extra)
        return RegionMeasurement(region, side, size.lr_mm, size.ap_mm, size.si_mm, size.volume_mm3,
                                 size.equivalent_diameter_mm, size.nuclei, basis)

    with_thermometry = thermometry_dose_cem43 is not None and thermometry_peak_c is not None
    out = []
    for region in chosen:
        true = measure(region, dose_cem43, peak_temperature_c, "true field")
        if with_thermometry:
            true.thermometry = measure(region, thermometry_dose_cem43, thermometry_peak_c, "thermometry")
        out.append(true)
    return out


def lesion_model(default: str = DEFAULT_COMPARISON, thermometry=None) -> dict:
    """The report's ``lesion_model`` block: the default comparison, its basis and the regions table.

    ``thermometry`` (voxel mm, frame s) names the simulated thermometry of the
    thermometry basis.
    """
    if default not in _BY_KEY:
        raise KeyError(f"unknown clinical region {default!r} (have {sorted(_BY_KEY)})")
    region = _BY_KEY[default]
    block = {
        "default_comparison": region.key,
        "default_threshold_cem43": region.level if region.kind == "dose" else None,
        "corresponds_to": region.corresponds_to,
        "source": region.source,
        "default_basis": DEFAULT_BASIS,
        "basis_reason": _BASIS_REASON,
        "bases": dict(BASES),
        "regions": [asdict(r) for r in CLINICAL_REGIONS],
    }
    if thermometry is not None:
        voxel, frame = thermometry
        block["thermometry"] = {"voxel_mm": [float(v) for v in voxel], "frame_s": float(frame)}
    return block


def describe_lesion(entry: dict) -> dict:
    """A ``lesions[]`` entry with ``corresponds_to`` and ``source`` added when its threshold is in the table."""
    for region in CLINICAL_REGIONS:
        if region.kind == "dose" and region.level == float(entry.get("threshold_cem43", -1)):
            head = {k: v for k, v in entry.items() if k not in ("basis", "thermometry")}
            tail = {k: entry[k] for k in ("basis", "thermometry") if k in entry}
            return {**head, "corresponds_to": region.corresponds_to, "source": region.source, **tail}
    return entry


def report_blocks(result) -> dict:
    """The report's ``isotherms`` (51 C and 54 C, every side, both bases) and ``lesion_model`` blocks.

    ``result`` is a :class:`fusplan.planner.SimulationResult`; the dose regions are the
    protocol's ``lesions`` (the bundled protocols and the default thresholds list 17,
    100, 200 and 240 CEM43), the isotherms are measured here on each side's
    peak-temperature map and on its simulated thermometry.
    """
    targets = result.targets
    names = None if targets is None else targets.label_names
    volumes = None if targets is None else targets.nucleus_volumes_mm3
    baseline = result.protocol.tissue.baseline_temperature_c
    isotherms = []
    for side, s in result.sides.items():
        regions = clinical_regions(s.dose_cem43, s.peak_temperature_c, s.grid, baseline_temperature_c=baseline,
                                   side=side, labels=s.labels, label_names=names, nucleus_volumes_mm3=volumes,
                                   keys=[r.key for r in CLINICAL_REGIONS if r.kind == "isotherm"],
                                   thermometry_dose_cem43=s.history.thermometry_dose_cem43,
                                   thermometry_peak_c=s.history.thermometry_peak_c)
        isotherms += [r.to_dict() for r in regions]
    return {"isotherms": isotherms, "lesion_model": lesion_model(thermometry=resolve_thermometry(
        result.protocol.thermometry))}
