"""Predict the treatment with a calibrated focus model (:func:`predict_treatment`).

After :func:`fusplan.calibration.calibrate` has fitted the heating efficiency, focal
spread and spot offset on the low-energy stage, the protocol is simulated again with
that model (through the one pulse driver, :func:`fusplan.driver.redrive`): the powers
and energies the treatment will need, where its lesions fall and the steering that
puts them back on the target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .calibration import Calibration
from .clinical import clinical_regions, lesion_model
from .focusmodel import run_protocol, side_model

__all__ = ["TreatmentPrediction", "predict_treatment"]


@dataclass
class TreatmentPrediction:
    """The protocol simulated with a calibrated focus model (one side)."""

    side: str | None
    focus_ras_mm: np.ndarray
    steering_offset_ras_mm: np.ndarray
    steering_offset_acpc_mm: np.ndarray
    sonications: list[dict]
    regions: list = field(repr=False)
    dose_cem43: np.ndarray = field(repr=False)
    peak_temperature_c: np.ndarray = field(repr=False)
    grid: object = field(repr=False)
    thermometry: tuple | None = None

    def to_dict(self) -> dict:
        """Powers and energies, the calibrated focus and the steering that re-centres it, lesions.

        The lesions are where the calibrated spot puts them without steering; steering by
        ``steering_offset_ras_mm`` moves them (same size) back onto the target.
        """
        out = {"focus_ras_mm": [float(v) for v in self.focus_ras_mm],
               "steering_offset_ras_mm": [float(v) for v in self.steering_offset_ras_mm],
               "steering_offset_acpc_mm": [float(v) for v in self.steering_offset_acpc_mm],
               "sonications": self.sonications,
               "lesions": [r.to_dict() for r in self.regions if r.region.kind == "dose"],
               "isotherms": [r.to_dict() for r in self.regions if r.region.kind == "isotherm"],
               "lesion_model": lesion_model(thermometry=self.thermometry)}
        if self.side is not None:
            out["side"] = self.side
        return out


def predict_treatment(result, calibration: Calibration, *, threads: int = 1) -> TreatmentPrediction:
    """Simulate the protocol with the calibrated focus model.

    Sonications that were measured keep the power actually given; ``peak_c`` sonications
    are titrated under the calibrated model (the powers and energies the treatment will
    need; as in the plan, a power over the console's maximum acoustic power is refused
    naming the sonication's protocol key); fixed powers stay. The focus is where the
    calibrated spot is (``target + offset``); the steering offset that puts it back on
    the target is ``-offset`` (RAS mm, and along the grid axes: AC-PC mm on a scan).
    ``threads``: FFT worker threads (resolved by the entry point).
    """
    model = side_model(result, calibration.side)
    history, grid = run_protocol(model, efficiency=calibration.heating_efficiency,
                                 spread=calibration.focal_spread, offset_ras_mm=calibration.offset_ras_mm,
                                 fixed_powers_w=calibration.given_powers_w, threads=threads)
    records = []
    for sonication, res in zip(model.protocol.sonications, history.results):
        record = {"index": sonication.index, "stage": sonication.stage, "power_w": float(res.power_w),
                  "energy_j": float(res.power_w * sonication.duration_s),
                  "peak_temperature_c": float(res.peak_temperature_c)}
        if res.thermometry_peak_c is not None:
            record["thermometry_peak_c"] = float(res.thermometry_peak_c)
        records.append(record)
    regions = clinical_regions(history.dose_cem43, history.peak_temperature_c, grid,
                               baseline_temperature_c=model.tissue.baseline_temperature_c, side=model.side,
                               labels=model.labels, label_names=model.label_names,
                               nucleus_volumes_mm3=model.nucleus_volumes_mm3,
                               thermometry_dose_cem43=history.thermometry_dose_cem43,
                               thermometry_peak_c=history.thermometry_peak_c)
    offset = np.asarray(calibration.offset_ras_mm, float)
    return TreatmentPrediction(model.side, model.target_ras_mm + offset, -offset, grid.axes.T @ -offset, records,
                               regions, history.dose_cem43, history.peak_temperature_c, grid, model.thermometry)
