"""The validated protocol: frozen dataclasses built by :mod:`fusplan.protocol.validate`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..acoustics import Transducer
from ..tissue import Tissue
from .limits import DEFAULT_THRESHOLDS_CEM43, FOCUS_PRIORS


@dataclass(frozen=True)
class Sonication:
    """One sonication after ``repeat`` has been expanded.

    Exactly one of ``power_w`` (emitted acoustic power), ``absorbed_power_w`` (heat
    deposited in tissue) and ``peak_c`` (titrate to this peak temperature) is set.
    ``offset_mm`` moves the focus from the target, in AC-PC mm (``offset_frame="acpc"``)
    or world RAS mm (``"ras"``).
    """

    index: int
    stage: str
    duration_s: float
    cooling_s: float = 0.0
    power_w: float | None = None
    absorbed_power_w: float | None = None
    peak_c: float | None = None
    offset_mm: tuple[float, float, float] | None = None
    offset_frame: str = "acpc"


@dataclass(frozen=True)
class Thermometry:
    """What MR thermometry shows: temperature averaged over a voxel and a frame."""

    voxel_mm: tuple[float, float, float]
    frame_s: float


@dataclass(frozen=True)
class FocusPrior:
    """Per-axis widening of the heat source of an uncalibrated plan (along the grid axes: LR, AP, SI on a scan).

    ``spread`` is the ratio of the focal width applied to the physics model's (1 = none),
    ``source`` where it comes from. Calibration on measured thermometry replaces it.
    """

    spread: tuple[float, float, float]
    source: str
    name: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "spread": [float(v) for v in self.spread], "source": self.source}


def named_focus_prior(name: str) -> FocusPrior:
    """A prior of :data:`~fusplan.protocol.limits.FOCUS_PRIORS` by name."""
    spread, source = FOCUS_PRIORS[name]
    return FocusPrior(tuple(spread), source, name)


@dataclass(frozen=True)
class Protocol:
    """A validated sonication protocol (frozen, hashable, picklable).

    Attributes
    ----------
    name : str
    tissue : fusplan.tissue.Tissue
    transducer : fusplan.acoustics.Transducer
    spacing_mm, extent_mm : float
        Voxel size and side of the cubic planning box centred on the target.
    sonications : tuple of Sonication
        ``repeat`` expanded, ``index`` counted from 1.
    thresholds_cem43 : tuple of float
    thermometry : Thermometry or None
    focus_prior : FocusPrior, "auto" or "none"
        Prior on the focal spread of the uncalibrated plan; ``"auto"`` (default) is
        Pulkkinen 2014's on a head (a scan plan with a skull model), none otherwise
        (:meth:`resolved_focus_prior`).
    source : str or None
        The file the protocol was read from.
    spec_json : str
        The raw mapping as canonical JSON; :attr:`spec` returns it as a new dict.
    """

    name: str
    tissue: Tissue
    transducer: Transducer
    spacing_mm: float
    extent_mm: float
    sonications: tuple[Sonication, ...]
    thresholds_cem43: tuple[float, ...] = DEFAULT_THRESHOLDS_CEM43
    thermometry: Thermometry | None = None
    focus_prior: FocusPrior | str = "auto"
    source: str | None = None
    spec_json: str = field(default="{}", repr=False)

    @property
    def spec(self) -> dict:
        """The raw protocol mapping (a fresh copy: editing it changes nothing)."""
        return json.loads(self.spec_json)

    def to_dict(self) -> dict:
        """The protocol as run: the raw mapping it was built from (as :attr:`spec`)."""
        return self.spec

    def resolved_focus_prior(self, head: bool) -> FocusPrior | None:
        """The prior the plan applies: ``"auto"`` is Pulkkinen 2014's on a head, none elsewhere.

        ``head``: a plan on a scan with a skull model (population or CT). The residual the
        prior stands for is that of real heads over full-wave simulation; the phantom (also
        with a synthetic skull CT, a physics test bench) and the single-factor skull model
        (``skull: none``) keep the physics focus.
        """
        if isinstance(self.focus_prior, FocusPrior):
            return self.focus_prior
        if self.focus_prior == "auto" and head:
            return named_focus_prior("pulkkinen2014")
        return None

    @property
    def total_time_s(self) -> float:
        """Sum of all sonication and cooling times in s."""
        return float(sum(s.duration_s + s.cooling_s for s in self.sonications))
