"""Transducer kinds: the names ``transducer.model`` takes and what each kind can do.

Code that behaves differently per kind asks the kind (``transducer.kind.elements``)
instead of comparing model names; a new transducer type is one :class:`TransducerKind`
entry in :data:`KINDS` (plus its geometry in :func:`fusplan.acoustics.element_layout`).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HEMISPHERICAL_ARRAY", "FOCUSED_BOWL", "GAUSSIAN", "MODELS", "TransducerKind", "KINDS"]

HEMISPHERICAL_ARRAY = "hemispherical_array"
FOCUSED_BOWL = "focused_bowl"
GAUSSIAN = "gaussian"


@dataclass(frozen=True)
class TransducerKind:
    """What one ``transducer.model`` is.

    Attributes
    ----------
    name : str
        The ``transducer.model`` value.
    radiates : bool
        It has a pressure field (a Rayleigh sum over elements or patches); False: the
        heat source is given directly (``gaussian``, per watt *absorbed*, so its
        sonications give ``absorbed_power_w``).
    elements : bool
        Independently driven elements: per-element drive, electronic steering about a
        fixed geometric focus, a skull model (``transducer.skull``).
    """

    name: str
    radiates: bool
    elements: bool


#: Every transducer kind by ``transducer.model`` name (the first is the default).
KINDS = {kind.name: kind for kind in (
    TransducerKind(HEMISPHERICAL_ARRAY, radiates=True, elements=True),
    TransducerKind(FOCUSED_BOWL, radiates=True, elements=False),
    TransducerKind(GAUSSIAN, radiates=False, elements=False),
)}
#: Valid ``transducer.model`` values.
MODELS = tuple(KINDS)
