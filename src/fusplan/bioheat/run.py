"""The state one run of the pulse driver shares between its phases.

:class:`DriverSettings` (how to sample and bound a run), :class:`RunContext` (solver,
source spectra, pulses, settings) and :class:`HotBox` (the box of voxels and the
response tables on it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .spectral import Pulse, SpectralBioheat

__all__ = ["DEFAULT_MEMORY_BUDGET_BYTES", "DriverSettings", "RunContext", "HotBox", "pulse_powers"]

#: Memory a protocol may use in the thermal solver (tables, spectra, full-grid maps).
DEFAULT_MEMORY_BUDGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class DriverSettings:
    """How :func:`simulate_pulses` samples and bounds a run (see its parameters)."""

    thermometry_voxel_mm: tuple[float, float, float] | None = None
    thermometry_frame_s: float | None = None
    dose_floor_c: float = 39.0
    focus_interval_s: float = 0.5
    dose_rtol: float = 1e-2
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES
    max_power_w: float | None = None
    #: Name of each pulse's protocol entry for messages (``"clt.yaml: sonication entry 3"``).
    pulse_names: tuple[str, ...] | None = None
    #: Thermometry voxel (mm) and frame (s) of the displayed maps (None: not computed).
    displayed: tuple[tuple[float, float, float], float] | None = None


@dataclass
class RunContext:
    """What every phase of one run reads: the solver, the sources and the settings."""

    solver: SpectralBioheat
    spectra: dict
    pulses: Sequence[Pulse]
    settings: DriverSettings
    t_end: float

    @property
    def t_art(self) -> float:
        return self.solver.tissue.blood_temperature_c

    def base_rise(self, times) -> np.ndarray:
        """The initial uniform rise over ``T_a``, decaying at the perfusion rate."""
        base = self.solver.tissue.baseline_temperature_c - self.t_art
        return base * np.exp(-self.solver.perfusion * np.clip(times, 0, None))

    def offset(self, times) -> np.ndarray:
        """What table rises are added to: baseline decay plus arterial temperature, ``(n_t, 1)``."""
        return self.base_rise(np.asarray(times))[:, None] + self.t_art


@dataclass
class HotBox:
    """The hot box ``lo <= index < hi`` and the tables on it."""

    lo: np.ndarray
    hi: np.ndarray
    tables: dict
    core_positions: np.ndarray  # positions (in the box) of the candidate peak voxels
    core_tables: dict
    thermometry_tables: dict | None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.hi - self.lo)

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.lo, self.hi))


def pulse_powers(pulses: Sequence[Pulse]) -> list[float]:
    """The (set) powers of ``pulses``."""
    return [float(p.power_w) for p in pulses]
