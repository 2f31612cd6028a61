"""Uncertainty band of the predicted lesion: documented parameter uncertainties propagated.

Every uncertain input has a distribution and a source in :data:`UNCERTAINTY_TABLE`.
:func:`uncertainty_band` draws ``samples`` parameter sets and reports, for the
comparison region (default 200 CEM43, the day-1 T1 lesion, on the default basis of
:mod:`fusplan.clinical`: the simulated thermometry), the 5/50/95 % points of
the equivalent diameter and the LR/AP/SI extents, the probability that the lesion
covers the target point and, per neighbouring nucleus, the probability of any spill
and its 95th-percentile volume.

Cost: the lesion's size does not depend on where it sits, and a translation of the
focus translates the dose map (homogeneous tissue). So the draws are split in two:

- ``structural`` draws (default ``samples // 8``, at least 8) of the parameters that
  change the lesion's size (perfusion, conductivity, attenuation, focal spread,
  heating efficiency, the thermometry error of every titrated peak) each run the
  protocol once (:func:`fusplan.focusmodel.run_protocol`: superposition engine on a
  box of +/-10 mm around the target; adaptive dose to 5 %, enough for a contour whose
  dose falls tenfold per ~0.3 mm);
- every sample pairs one structural draw (in turn) with its own targeting and spot
  offset, applied by translating that draw's dose map (trilinear interpolation) for
  coverage and spill.

This is plain Monte Carlo with draws shared between samples (a stratified two-level
design); percentiles of size come from the structural draws. Structural draws can run
in worker processes (``workers``).

After :func:`fusplan.calibration.calibrate` the efficiency, spread and spot offset are
drawn from the fit's Gaussian posterior instead of their priors (spread floored at
1, the offset being corrected by steering leaves only its uncertainty); a parameter
the measurements did not inform keeps its prior.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .clinical import DEFAULT_BASIS, DEFAULT_COMPARISON, CLINICAL_REGIONS
from .errors import FusplanInputError
from .focusmodel import SideModel, crop_grid, run_protocol, side_model
from .lesion import measure_lesion
from .protocol.limits import MAX_UNCERTAINTY_SAMPLES

__all__ = ["UNCERTAINTY_TABLE", "UncertaintyBand", "uncertainty_band", "draw_parameters"]

#: Each uncertain input: how it is drawn and where the figure comes from (docs/physics.md).
UNCERTAINTY_TABLE = (
    {"name": "perfusion", "distribution": "uniform 212-764 mL/min/kg (x 0.38-1.37 of the protocol's)",
     "source": "BabelBrain tissue table: white matter 212, grey matter 764 mL/min/kg (thalamus is a mix); "
               "IT'IS brain 559"},
    {"name": "conductivity", "distribution": "uniform 0.48-0.55 W/m/K (x 0.94-1.08)",
     "source": "BabelBrain tissue table: white 0.48, grey 0.55 W/m/K; IT'IS brain 0.51"},
    {"name": "attenuation", "distribution": "uniform x 0.975-1.025 (3.9-4.1 Np/m at 650 kHz)",
     "source": "IT'IS 0.59 dB/(cm MHz^y), y 1.2-1.3"},
    {"name": "focal_spread", "distribution": "uniform 1.0-1.4 (uncalibrated, no focus prior)",
     "source": "Pulkkinen et al. 2014: simulated CLT foci 22 % (SI) to 40 % (AP) too small"},
    {"name": "focal_spread_prior", "distribution": "per axis 1 / normal(1 / prior, 0.135), LR with AP, >= 1 "
                                                   "(uncalibrated plan with a focus prior; a calibration "
                                                   "replaces it)",
     "source": "Pulkkinen et al. 2014: simulated/measured focal width 0.60 +/- 0.13 (AP), 0.78 +/- 0.14 (SI)"},
    {"name": "heating_efficiency", "distribution": "normal 1 +/- 0.24 (uncalibrated)",
     "source": "Pulkkinen et al. 2014: simulated focal rise 24 +/- 13 % too low"},
    {"name": "targeting_error", "distribution": "normal 0.62 mm per axis (mean 3D error 0.99 mm)",
     "source": "Moser et al. 2013: targeting accuracy 0.99 +/- 0.39 mm (3D)"},
    {"name": "spot_offset", "distribution": "normal 1.0 mm per axis (mean 3D 1.6 mm; uncalibrated)",
     "source": "Pulkkinen et al. 2014: measured peaks 1.6 +/- 0.6 mm from the target"},
    {"name": "thermometry_noise", "distribution": "normal 0.75 C on every titrated displayed peak",
     "source": "Brain PRF thermometry noise 0.5-1 C per voxel (physics.md)"},
    {"name": "calibrated", "distribution": "normal(fit, covariance) for efficiency, spread, offset",
     "source": "fusplan.calibration fit (Jacobian, residual variance)"},
)

_PERFUSION = (212.0 / 559.0, 764.0 / 559.0)
_CONDUCTIVITY = (0.48 / 0.51, 0.55 / 0.51)
_ATTENUATION = (0.975, 1.025)
_SPREAD = (1.0, 1.4)
_PRIOR_FRACTION_SD = 0.135  # Pulkkinen 2014: +/- 13 % (AP), +/- 14 % (SI)
_EFFICIENCY_SD = 0.24
_TARGETING_SD_MM = 0.99 / (2 * np.sqrt(2 / np.pi))  # mean norm of an isotropic 3D normal = 1.596 sigma
_SPOT_SD_MM = 1.6 / (2 * np.sqrt(2 / np.pi))
_THERMOMETRY_SD_C = 0.75
_BOX_MM = 10.0


def draw_parameters(model: SideModel, calibration, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` structural parameter draws (tissue factors, efficiency, spread, peak errors)."""
    titrated = np.array([s.peak_c is not None and (calibration is None or s.index not in calibration.given_powers_w)
                         for s in model.protocol.sonications])
    draws = []
    for _ in range(n):
        d = {"perfusion": rng.uniform(*_PERFUSION), "conductivity": rng.uniform(*_CONDUCTIVITY),
             "attenuation": rng.uniform(*_ATTENUATION),
             "peak_shift_c": np.where(titrated, rng.normal(0.0, _THERMOMETRY_SD_C, titrated.size), 0.0)}
        if calibration is None:
            d["efficiency"] = float(np.clip(rng.normal(1.0, _EFFICIENCY_SD), 0.2, 5.0))
        else:
            eta = rng.normal(calibration.heating_efficiency, np.sqrt(calibration.covariance[0, 0]))
            d["efficiency"] = float(np.clip(eta, 0.2, 5.0))
        if calibration is None and model.focus_prior is not None:  # a calibration replaces the prior
            lateral, axial = (1.0 / np.clip(rng.normal(1.0 / p, _PRIOR_FRACTION_SD), 0.25, 1.0)
                              for p in (model.focus_prior[1], model.focus_prior[2]))
            d["spread"] = (max(1.0, float(lateral) * model.focus_prior[0] / model.focus_prior[1]), float(lateral),
                           float(axial))
        elif calibration is None or "focal_spread" not in calibration.fitted:
            d["spread"] = rng.uniform(*_SPREAD)
        else:
            spread = rng.normal(calibration.focal_spread, np.sqrt(calibration.covariance[1, 1]))
            d["spread"] = float(max(spread, 1.0))
        draws.append(d)
    return draws


def draw_offsets(calibration, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` world offsets (mm) of the lesion from the target: targeting plus spot offset."""
    targeting = rng.normal(0.0, _TARGETING_SD_MM, (n, 3))
    if calibration is None or "offset_ras_mm" not in calibration.fitted:
        spot = rng.normal(0.0, _SPOT_SD_MM, (n, 3))
    else:
        spot = rng.multivariate_normal(np.zeros(3), calibration.covariance[2:, 2:], n)
    return targeting + spot


def _structural_run(model: SideModel, draw: dict, threshold: float, calibration):
    tissue = dataclasses.replace(
        model.tissue, perfusion_ml_min_kg=model.tissue.perfusion_ml_min_kg * draw["perfusion"],
        conductivity_w_m_k=model.tissue.conductivity_w_m_k * draw["conductivity"],
        attenuation_np_m=model.tissue.attenuation_np_m * draw["attenuation"])
    fixed = None if calibration is None else calibration.given_powers_w
    history, grid = run_protocol(model, efficiency=draw["efficiency"], spread=draw["spread"], tissue=tissue,
                                 fixed_powers_w=fixed, peak_shift_c=draw["peak_shift_c"], crop_mm=_BOX_MM,
                                 dose_rtol=0.05, dose_floor_c=41.0, displayed=DEFAULT_BASIS == "thermometry")
    dose = history.thermometry_dose_cem43 if DEFAULT_BASIS == "thermometry" else history.dose_cem43
    size = measure_lesion(dose, grid, threshold).to_dict()
    return dose.astype(np.float32), grid, size


@dataclass
class UncertaintyBand:
    """Percentiles and probabilities over the samples (see :func:`uncertainty_band`)."""

    side: str | None
    threshold_cem43: float
    samples: int
    structural_samples: int
    percentiles: dict
    target_coverage_probability: float
    spill: dict
    calibrated: bool
    sizes: list = field(repr=False, default_factory=list)
    #: The plan's own (nominal) lesion at this threshold, for the explanation (set by :func:`fusplan.assessment.assess`).
    nominal_diameter_mm: float | None = None
    #: Whether the spread was drawn around the plan's focus prior (else from the uniform prior range).
    focus_prior: bool = False

    def explanation(self) -> str:
        """What the band is centred on and what its coverage means, with this band's numbers."""
        d = self.percentiles["equivalent_diameter_mm"]
        if self.calibrated:
            centre = ("The band is centred on the calibrated model: heating efficiency, focal spread and spot offset "
                      "are drawn from the fit's posterior, the other parameters from their published ranges.")
        elif self.focus_prior:
            centre = ("The band is centred on this plan's own model: the focal spread is drawn per axis around the "
                      "focus prior the plan applies (simulated CLT foci were 22-40 % too small, Pulkkinen et al. "
                      f"2014), the heating efficiency from 1 +/- {_EFFICIENCY_SD:g} and the other parameters from "
                      "their published ranges.")
        else:
            centre = ("The band is centred on the published ranges of the parameters, not on this plan's nominal "
                      f"model: the focal spread is drawn from {_SPREAD[0]:g}-{_SPREAD[1]:g} times the simulated focus "
                      "(simulated CLT foci were 22-40 % too small, Pulkkinen et al. 2014) and the heating efficiency "
                      f"from 1 +/- {_EFFICIENCY_SD:g}, so the band's lesions are mostly larger than the nominal one.")
        if not self.calibrated and self.nominal_diameter_mm is not None:
            nominal = self.nominal_diameter_mm
            where = ("below its 5th percentile" if nominal < d["p5"] else
                     "above its 95th percentile" if nominal > d["p95"] else "inside it")
            centre += f" The nominal {nominal:.2f} mm lesion lies {where}."
        if self.calibrated:
            moved = (f"the targeting error ({_TARGETING_SD_MM:.2f} mm per axis) and the fitted spot offset's "
                     "remaining uncertainty")
        else:
            moved = (f"the targeting error and the focal spot's offset (together "
                     f"{float(np.hypot(_TARGETING_SD_MM, _SPOT_SD_MM)):.2f} mm per axis, Moser et al. 2013, "
                     "Pulkkinen et al. 2014)")
        coverage = (f"Coverage ({self.target_coverage_probability:.2f}) is the probability that the lesion, moved by "
                    f"{moved}, still contains the planned target point: with a lesion {d['p50']:.1f} mm across, a "
                    "displacement of about a millimetre often leaves the point outside. It is not the fraction of "
                    "the target covered.")
        return f"{centre} {coverage}"

    def lesion_uncertainty(self) -> dict:
        """The ``uncertainty`` of the matching ``lesions[]`` entry (contract.md), with its :meth:`explanation`."""
        return {**self.percentiles, "target_coverage_probability": self.target_coverage_probability,
                "spill": self.spill, "basis": DEFAULT_BASIS, "explanation": self.explanation()}

    def to_dict(self) -> dict:
        out = {"threshold_cem43": self.threshold_cem43, "samples": self.samples,
               "structural_samples": self.structural_samples, "calibrated": self.calibrated,
               **self.lesion_uncertainty(), "parameters": [dict(p) for p in UNCERTAINTY_TABLE
                                                           if self.calibrated or p["name"] != "calibrated"]}
        if self.side is not None:
            out["side"] = self.side
        return out


def _percentiles(values) -> dict:
    p5, p50, p95 = np.percentile(np.asarray(values, float), [5, 50, 95])
    return {"p5": float(p5), "p50": float(p50), "p95": float(p95)}


def uncertainty_band(result, calibration=None, *, samples: int = 200, structural: int | None = None,
                     side: str | None = None, threshold_cem43: float | None = None, seed: int = 0,
                     workers: int = 1, engine=None, progress=None) -> UncertaintyBand:
    """Propagate :data:`UNCERTAINTY_TABLE` to the lesion of one simulated side.

    Parameters
    ----------
    result : fusplan.planner.SimulationResult
    calibration : fusplan.calibration.Calibration, optional
        Draw efficiency, spread and spot offset from its posterior instead of the priors.
    samples : int
        Number of samples (each a full parameter set).
    structural : int, optional
        Protocol runs (default ``max(8, samples // 8)``); samples share them in turn.
    side : str, optional
        Default: the calibration's side, else the first.
    threshold_cem43 : float, optional
        Region measured (default the day-1 T1 comparison, 200 CEM43).
    seed : int
        Random seed (results are deterministic).
    workers : int
        Processes for the structural runs (1: in this process).
    engine : optional
        A batch engine (:func:`fusplan.batch.engines.make_engine`: process pool or Dask)
        to run the structural runs on instead; the caller closes it.
    progress : callable(fraction, message), optional
    """
    say = progress or (lambda fraction, message="": None)
    if not 2 <= samples <= MAX_UNCERTAINTY_SAMPLES:
        raise FusplanInputError(f"uncertainty samples must be 2-{MAX_UNCERTAINTY_SAMPLES} (got {samples})")
    if threshold_cem43 is None:
        threshold_cem43 = next(r.level for r in CLINICAL_REGIONS if r.key == DEFAULT_COMPARISON)
    side = calibration.side if side is None and calibration is not None else side
    model = side_model(result, side)
    n_struct = min(samples, structural or max(8, samples // 8))
    rng = np.random.default_rng(seed)
    draws = draw_parameters(model, calibration, n_struct, rng)
    offsets = draw_offsets(calibration, samples, rng)
    runs = []
    if engine is not None:
        futures = [engine.submit(_structural_run, model, d, threshold_cem43, calibration) for d in draws]
        for i, f in enumerate(futures):
            runs.append(f.result())
            say((i + 1) / (n_struct + 1), f"uncertainty: run {i + 1}/{n_struct}")
    elif workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_structural_run, model, d, threshold_cem43, calibration) for d in draws]
            for i, f in enumerate(futures):
                runs.append(f.result())
                say((i + 1) / (n_struct + 1), f"uncertainty: run {i + 1}/{n_struct}")
    else:
        for i, d in enumerate(draws):
            runs.append(_structural_run(model, d, threshold_cem43, calibration))
            say((i + 1) / (n_struct + 1), f"uncertainty: run {i + 1}/{n_struct}")
    box, crop = crop_grid(model.grid, model.target_ras_mm, _BOX_MM)
    labels = None if model.labels is None else np.asarray(model.labels)[crop]
    target_name = None
    names = dict(model.label_names or {})
    if labels is not None:
        centre = tuple(np.round(box.world_to_index(model.target_ras_mm)).astype(int))
        target_name = names.get(int(labels[centre]), int(labels[centre])) if labels[centre] else None
    world = box.world_coordinates().reshape(-1, 3)
    covered = 0
    spill_volumes: dict[str, list[float]] = {}
    voxel_mm3 = box.spacing_mm**3
    for j in range(samples):
        dose, grid, _ = runs[j % n_struct]
        at_target = grid.world_to_index(model.target_ras_mm - offsets[j])[:, None]
        covered += ndimage.map_coordinates(dose, at_target, order=1, cval=0.0)[0] >= threshold_cem43
        if labels is None:
            continue
        moved = ndimage.map_coordinates(dose, grid.world_to_index(world - offsets[j]).T, order=1, cval=0.0)
        inside = (moved >= threshold_cem43).reshape(box.shape)
        hit, counts = np.unique(labels[inside], return_counts=True)
        seen = {}
        for label, count in zip(hit.tolist(), counts.tolist()):
            name = str(names.get(label, label))
            if label == 0 or name == str(target_name):
                continue
            seen[name] = seen.get(name, 0.0) + count * voxel_mm3
        for name in set(spill_volumes) | set(seen):
            spill_volumes.setdefault(name, [0.0] * j).append(seen.get(name, 0.0))
    say(1.0, "uncertainty: done")
    sizes = [run[2] for run in runs]
    percentiles = {key: _percentiles([s[key] for s in sizes])
                   for key in ("equivalent_diameter_mm", "lr_mm", "ap_mm", "si_mm", "volume_mm3")}
    spill = {name: {"probability": float(np.mean(np.array(v) > 0)), "volume_mm3_p95": float(np.percentile(v, 95))}
             for name, v in sorted(spill_volumes.items())}
    return UncertaintyBand(model.side, float(threshold_cem43), samples, n_struct, percentiles,
                           float(covered / samples), spill, calibration is not None, sizes,
                           focus_prior=model.focus_prior is not None)
