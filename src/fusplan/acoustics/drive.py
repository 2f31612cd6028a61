"""Per-element drive of an array: complex weights and, optionally, where the sources sit.

An :class:`ElementDrive` travels whole from whoever computes it (the skull model,
:func:`fusplan.skull.skull_drive`) to the field functions (``drive=`` of
:func:`fusplan.acoustics.heat_source` and friends), which check it against the
transducer (:meth:`ElementDrive.check`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusplan.errors import FusplanInputError

from .kinds import HEMISPHERICAL_ARRAY

__all__ = ["ElementDrive"]


@dataclass(frozen=True, eq=False)
class ElementDrive:
    """Per-element complex weights and, optionally, source positions and normals.

    Built (and validated) by :meth:`build`; ``None`` fields keep the ideal array's value.

    Attributes
    ----------
    weights : (n_elements,) complex ndarray, optional
        Multiply each element's drive after focusing (amplitude ``|w|``, phase ``arg w``).
    positions_mm, normals : (n_elements, 3) ndarray, optional
        Source positions (world mm) and unit normals replacing the layout of
        :func:`~fusplan.acoustics.element_layout` (refracted virtual sources); focusing
        phases are computed from the positions actually used.
    """

    weights: np.ndarray | None = None
    positions_mm: np.ndarray | None = None
    normals: np.ndarray | None = None

    @classmethod
    def build(cls, n_elements: int, *, weights=None, amplitude=None, phase_rad=None, positions_mm=None,
              normals=None) -> ElementDrive:
        """A validated drive of ``n_elements`` elements.

        Give ``weights``, or ``amplitude`` (>= 0) and/or ``phase_rad`` (weight
        ``amplitude * exp(i phase)``; a skull delay ``phi`` left uncorrected is
        ``phase_rad = -phi``); ``normals`` are normalised.
        """
        n = int(n_elements)
        if weights is not None and (amplitude is not None or phase_rad is not None):
            raise FusplanInputError("give element weights or element amplitude/phase, not both")
        if weights is not None:
            weights = _per_element("element weights", weights, n, complex)
        elif amplitude is not None or phase_rad is not None:
            amplitude = np.ones(n) if amplitude is None else _per_element("element amplitude", amplitude, n, float)
            phase = np.zeros(n) if phase_rad is None else _per_element("element phase_rad", phase_rad, n, float)
            if np.any(amplitude < 0):
                raise FusplanInputError("element amplitude must be >= 0")
            weights = amplitude * np.exp(1j * phase)
        if positions_mm is not None:
            positions_mm = _per_element("element positions_mm", positions_mm, n, float, 3)
        if normals is not None:
            normals = _per_element("element normals", normals, n, float, 3)
            length = np.linalg.norm(normals, axis=1)
            if not np.all(length > 0):
                raise FusplanInputError("element normals must be non-zero vectors")
            normals = normals / length[:, None]
        return cls(weights, positions_mm, normals)

    @property
    def n_elements(self) -> int | None:
        """Number of elements the drive is for (None: it changes nothing)."""
        for array in (self.weights, self.positions_mm, self.normals):
            if array is not None:
                return len(array)
        return None

    def check(self, transducer) -> None:
        """Refuse a drive that ``transducer`` cannot take (not an array, another element count)."""
        if not transducer.kind.elements:
            raise FusplanInputError(f"per-element weights and positions need transducer.model {HEMISPHERICAL_ARRAY} "
                                    f"(got {transducer.model})")
        n = self.n_elements
        if n is not None and n != transducer.elements:
            raise FusplanInputError(f"the element drive has {n} elements, transducer.elements is {transducer.elements}")


def _per_element(name: str, values, n: int, dtype, width: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    shape = (n,) if width is None else (n, width)
    if array.shape != shape:
        raise FusplanInputError(f"{name} must have shape {shape} (one row per element), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise FusplanInputError(f"{name} must be finite")
    return array
