"""Calibrate on measured thermometry, predict the treatment and add the uncertainty band.

:func:`assess` is what ``plan --thermometry FILE --uncertainty N`` (and ``simulate``,
the demo and the napari plugin) run after the simulation. Its :class:`Assessment`
hands the :class:`~fusplan.planner.SimulationResult` its report blocks as plain data
(``result.assessment``, :meth:`Assessment.blocks`), which add to the JSON report:

- ``calibration``: the fitted heating efficiency, focal spread and spot offset with
  their uncertainties and the fit residual (:meth:`fusplan.calibration.Calibration.to_dict`);
- ``prediction``: the treatment simulated with the calibrated model: powers and
  energies, the calibrated focus, the steering offset that puts it back on the target,
  and its lesions and isotherms with what they correspond to
  (:meth:`fusplan.prediction.TreatmentPrediction.to_dict`);
- ``uncertainty``: one band per side (:meth:`fusplan.uncertainty.UncertaintyBand.to_dict`)
  for the default comparison (200 CEM43, the day-1 T1 lesion). Its percentiles,
  coverage probability and spill are also put on the lesion they describe as
  ``uncertainty``: the calibrated prediction's lesion when there is a calibration
  (the band then draws from the fit's posterior and assumes the steering correction),
  else the plan's own ``lesions[]`` entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .clinical import DEFAULT_BASIS
from .calibration import Calibration, calibrate
from .prediction import TreatmentPrediction, predict_treatment
from .execution import ExecutionOptions, execution_options
from .progress import within
from .results import AssessmentBlocks
from .uncertainty import UncertaintyBand, uncertainty_band

__all__ = ["Assessment", "assess"]


@dataclass
class Assessment:
    """Calibration, calibrated prediction and uncertainty bands of one simulation (each optional)."""

    calibration: Calibration | None = None
    prediction: TreatmentPrediction | None = None
    bands: list[UncertaintyBand] = field(default_factory=list)

    def blocks(self) -> AssessmentBlocks:
        """The report's ``calibration``, ``prediction`` and ``uncertainty`` blocks, as the result keeps them."""
        report: dict = {}
        if self.calibration is not None:
            report["calibration"] = self.calibration.to_dict()
        if self.prediction is not None:
            report["prediction"] = self.prediction.to_dict()
        if self.bands:
            report["uncertainty"] = [band.to_dict() for band in self.bands]
        return AssessmentBlocks(report, {(band.threshold_cem43, band.side): band.lesion_uncertainty()
                                         for band in self.bands}, calibrated=self.prediction is not None)


def assess(result, measurements=None, *, uncertainty_samples: int = 0, seed: int = 0,
           execution: ExecutionOptions | None = None, progress=None) -> Assessment:
    """Calibrate, predict and/or compute the uncertainty band; store it on ``result``.

    Parameters
    ----------
    result : fusplan.planner.SimulationResult
    measurements : Measurements, path or mapping, optional
        What thermometry showed (:mod:`fusplan.measured`); calibrates the side it names.
    uncertainty_samples : int
        Samples of the band (0: no band). With a calibration the band is for the
        calibrated side; without, for every simulated side.
    seed : int
    execution : fusplan.execution.ExecutionOptions, optional
        Threads, and where the band's runs go (``engine``, ``workers``); resolved here once.
    progress : callable(fraction, message), optional
        Overrides ``execution.progress``.

    Returns
    -------
    Assessment
        Its :meth:`~Assessment.blocks` are set as ``result.assessment``, so
        ``result.to_dict()`` and the written report include them.

    Raises
    ------
    FusplanInputError
        Bad measurements or an implausible fit.
    """
    options = execution_options(execution, progress=progress)
    say = options.say
    out = Assessment()
    if measurements is not None:
        out.calibration = calibrate(result, measurements, progress=within(say, 0.0, 0.3), threads=options.threads)
        say(0.3, "predicting the treatment")
        out.prediction = predict_treatment(result, out.calibration, threads=options.threads)
    if uncertainty_samples:
        sides = [out.calibration.side] if out.calibration is not None else list(result.sides)
        for i, side in enumerate(sides):
            low, width = 0.4 + 0.6 * i / len(sides), 0.6 / len(sides)
            band = uncertainty_band(result, out.calibration, samples=uncertainty_samples, side=side, seed=seed,
                                    execution=options.with_progress(within(say, low, low + width)))
            if out.calibration is None:  # the band is the plan's: name where the plan's own lesion lies in it
                nominal = (result.thermometry_lesions(side) if DEFAULT_BASIS == "thermometry"
                           else result.sides[side].lesions)
                band.nominal_diameter_mm = next((r.equivalent_diameter_mm for r in nominal
                                                 if r.threshold_cem43 == band.threshold_cem43), None)
            out.bands.append(band)
    say(1.0, "assessed")
    result.assessment = out.blocks()
    return out
