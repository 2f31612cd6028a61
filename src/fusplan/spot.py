"""The focal spot MR thermometry displays during one sonication: peak and FWHM.

What a clinician reads on the alignment sonication before steering: the hottest
thermometry voxel of the hottest frame and the spot's full width at half maximum (of the
rise over baseline) along the grid axes (LR, AP, SI on a scan). :func:`displayed_spot`
computes it for a :class:`fusplan.focusmodel.SideModel` under any focus model (physics,
a focus prior or a calibrated spread), from the exact Fourier temperature
(:meth:`fusplan.bioheat.SpectralBioheat.rise_at`) averaged over the thermometry voxel
(:func:`fusplan.thermometry.voxel_average`) and over sliding frames
(:func:`fusplan.thermometry.frame_average`), every earlier sonication's heat included.
The FWHM is read on the lines through the hottest voxel (linear interpolation at the
half-maximum crossings, :func:`fusplan.focusmodel.fwhm_voxels`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .bioheat import SpectralBioheat
from .focusmodel import SideModel, crop_grid, fwhm_voxels, transform_source
from .thermometry import frame_average, voxel_average

__all__ = ["DisplayedSpot", "displayed_spot"]

_STEP_S = 0.5
_HALF_EXTENT_MM = 8.0


@dataclass(frozen=True)
class DisplayedSpot:
    """Peak (C), its time (s from the sonication's start), spot FWHM (mm along the grid axes)."""

    sonication: int
    peak_c: float
    time_s: float
    fwhm_mm: tuple[float, float, float]

    def to_dict(self) -> dict:
        return {"sonication": self.sonication, "peak_c": self.peak_c, "time_s": self.time_s,
                "fwhm_mm": [float(v) for v in self.fwhm_mm]}


def displayed_spot(model: SideModel, sonication: int, *, spread=1.0, efficiency: float = 1.0,
                   powers_w: dict | None = None) -> DisplayedSpot:
    """The spot thermometry shows during 1-based ``sonication`` under a focus model.

    Parameters
    ----------
    model : SideModel
        Its ``sources`` are the physics sources (:func:`fusplan.focusmodel.side_model`).
    sonication : int
        1-based index into the protocol's sonications.
    spread : float or (3,) floats
        Focal spread applied to the physics sources (1: physics; ``model.focus_prior``:
        the uncalibrated plan's).
    efficiency : float
        Heating efficiency.
    powers_w : dict, optional
        1-based index -> power given (default: the powers the plan used, ``model.pulses``).
    """
    powers = dict(powers_w or {})
    pulses = [dataclasses.replace(p, power_w=powers.get(i + 1, p.power_w), peak_c=None)
              for i, p in enumerate(model.pulses[:sonication])]
    pulse = pulses[-1]
    voxel, frame = model.thermometry
    n_w = int(math.ceil(frame / _STEP_S - 1e-9))
    step = frame / n_w
    times = pulse.start_s + step * np.arange(-n_w, int(math.ceil((pulse.duration_s + frame + 2.0) / step)) + 1)
    box, crop = crop_grid(model.grid, model.target_ras_mm, _HALF_EXTENT_MM)
    solver = SpectralBioheat(model.grid.shape, model.grid.spacing_mm, model.tissue, duration_s=float(times[-1]) + 1)
    keys = {p.source for p in pulses}
    spectra = {k: solver.spectrum(efficiency * transform_source(model.sources[k], model.grid, spread=spread))
               for k in keys}
    rise = np.stack([solver.rise_at(pulses, spectra, times[i:i + 1])[0][crop] for i in range(times.size)])
    displayed = frame_average(voxel_average(rise, model.grid.spacing_mm, voxel, first_axis=1), step, frame)
    w, *ijk = np.unravel_index(np.argmax(displayed), displayed.shape)
    spot = displayed[w]
    widths = tuple(fwhm_voxels(np.moveaxis(spot, a, 0)[(slice(None),) + tuple(c for b, c in enumerate(ijk) if b != a)],
                               ijk[a]) * box.spacing_mm for a in range(3))
    tissue = model.tissue
    end = float(times[w + n_w])
    base = tissue.blood_temperature_c + (tissue.baseline_temperature_c - tissue.blood_temperature_c) * math.exp(
        -solver.perfusion * end)
    return DisplayedSpot(sonication, float(base + spot[tuple(ijk)]), end - pulse.start_s, widths)
