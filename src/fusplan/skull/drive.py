"""From a :class:`~fusplan.skull.model.SkullModel` to the array drive of the heat source.

The planner passes :attr:`SkullDrive.element_drive` (an
:class:`~fusplan.acoustics.ElementDrive`) to :func:`fusplan.acoustics.heat_source`:

- ``amplitude``: each element's amplitude transmission through the skull, times
  ``sqrt(N / N_active)`` so the field stays *per watt emitted* with the power shared
  equally by the active elements (inactive elements do not fire, as on the console);
- ``phase_rad``: minus the phase error left at the focus (``phase_correction: ct``:
  a seeded draw of the CT model's residual error, correlated between elements through the
  bone they share (:mod:`.aberration`); ``none``: the skull's full delay);
- ``positions_mm``: the apparent (virtual) sources of the refracted rays, so the
  field near the focus carries the refraction; the focusing phases of the field are
  computed from these positions;
- ``normals``: each element's normal turned by its ray's refraction (first order:
  ``normal + exit_direction - direction``, renormalised).

``SkullDrive.key`` is a hash of all four arrays: the planner's heat-source cache key, so a
cached source never outlives the skull it was computed through.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from ..acoustics import ElementDrive
from ..errors import FusplanInputError
from .model import SkullModel


@dataclass(frozen=True, eq=False)
class SkullDrive:
    """Per-element drive through the skull (arrays of length N, world RAS mm)."""

    amplitude: np.ndarray
    phase_rad: np.ndarray
    positions_mm: np.ndarray
    normals: np.ndarray
    key: str

    @property
    def element_drive(self) -> ElementDrive:
        """The ``drive`` of :func:`fusplan.acoustics.heat_source`."""
        return ElementDrive.build(len(self.amplitude), amplitude=self.amplitude, phase_rad=self.phase_rad,
                                  positions_mm=self.positions_mm, normals=self.normals)


def skull_drive(model: SkullModel, element_normals: np.ndarray, seed: int | None = None) -> SkullDrive:
    """The heat-source drive of ``model`` (see the module docstring).

    Parameters
    ----------
    model : SkullModel
    element_normals : (N, 3) ndarray
        The array's element normals (:func:`fusplan.acoustics.element_layout`).
    seed : int, optional
        Seed of the residual phase-error draw (default: the model's ``aberration_seed``).

    Raises
    ------
    FusplanInputError
        If no element can fire through this skull.
    """
    n_active = model.active_elements
    if n_active == 0:
        raise FusplanInputError(f"no element can fire through this skull ({model.source}): "
                                "every ray is beyond the critical angle, crosses air or misses the skull")
    amplitude = model.amplitude_transmission * math.sqrt(len(model.active) / n_active)
    phase = -model.focus_phase_error_rad(seed)
    positions = np.asarray(model.trace.apparent_sources_ras_mm, float)
    turned = np.asarray(element_normals, float) + model.trace.exit_directions - model.trace.directions
    normals = turned / np.linalg.norm(turned, axis=1, keepdims=True)
    digest = hashlib.sha1()
    for array in (amplitude, phase, positions, normals):
        digest.update(np.ascontiguousarray(np.round(array, 9), dtype=float).tobytes())
    return SkullDrive(amplitude=amplitude, phase_rad=phase, positions_mm=positions, normals=normals,
                      key=digest.hexdigest())


__all__ = ["SkullDrive", "skull_drive"]
