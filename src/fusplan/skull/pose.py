"""Transducer pose: where the hemispherical array sits around the head, and whether the head fits.

The array's natural (geometric) focus is placed at the target with its axis along the
subject's superior axis (+z of world RAS), or along a user tilt; electronic steering moves
the focus the rays converge to, not the array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..acoustics import Transducer, element_layout

#: Default water gap (mm) the skin must keep from every element: room for the membrane and
#: the circulating chilled water between scalp and elements. A stated planning margin, not a
#: published figure: change it with ``water_gap_margin_mm``.
WATER_GAP_MARGIN_MM = 5.0


def tilted_axis(tilt_lr_deg: float = 0.0, tilt_ap_deg: float = 0.0) -> np.ndarray:
    """Beam axis (unit, world RAS) tilted from superior: ``tilt_lr_deg`` towards +R (rotation
    about A), then ``tilt_ap_deg`` towards +A (rotation about R)."""
    lr, ap = math.radians(tilt_lr_deg), math.radians(tilt_ap_deg)
    axis = np.array([math.sin(lr) * math.cos(ap), math.sin(ap), math.cos(lr) * math.cos(ap)])
    return axis / np.linalg.norm(axis)


def array_element_positions(transducer: Transducer, geometric_focus_ras_mm, beam_axis=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Element centres (N, 3), world RAS mm, of ``transducer`` with its natural focus at
    ``geometric_focus_ras_mm`` and its axis along ``beam_axis`` (fusplan.acoustics layout)."""
    centres, _ = element_layout(transducer, np.asarray(geometric_focus_ras_mm, float), np.asarray(beam_axis, float))
    return centres


@dataclass(frozen=True)
class HeadFit:
    """Does the head fit inside the array with the stated water gap?

    Attributes
    ----------
    fits : bool
    min_water_gap_mm : float
        Smallest element -> skin distance along the element rays (NaN: no skin on any ray).
    margin_mm : float
    elements_too_close : int
        Elements whose gap is below the margin.
    """

    fits: bool
    min_water_gap_mm: float
    margin_mm: float
    elements_too_close: int

    def message(self) -> str:
        """One line for the report's warnings."""
        return (f"head does not fit the array: skin {self.min_water_gap_mm:.1f} mm from an element "
                f"(< {self.margin_mm:.1f} mm water gap) for {self.elements_too_close} elements")

    def to_dict(self) -> dict:
        """JSON-ready."""
        gap = None if not math.isfinite(self.min_water_gap_mm) else round(self.min_water_gap_mm, 2)
        return {"fits": self.fits, "min_water_gap_mm": gap, "margin_mm": self.margin_mm,
                "elements_too_close": self.elements_too_close}


def head_fit(skin_distance_mm: np.ndarray, margin_mm: float = WATER_GAP_MARGIN_MM) -> HeadFit:
    """Judge the fit from each element's distance to the skin along its ray to the focus."""
    gaps = np.asarray(skin_distance_mm, float)
    finite = gaps[np.isfinite(gaps)]
    minimum = float(finite.min()) if finite.size else math.nan
    close = int(np.sum(finite < margin_mm))
    return HeadFit(fits=close == 0, min_water_gap_mm=minimum, margin_mm=float(margin_mm), elements_too_close=close)
