"""The state one run of the pulse driver shares between its phases.

:class:`DriverSettings` (how to sample and bound a run), :class:`RunContext` (solver,
source spectra, pulses, settings) and :class:`HotBox` (the box of voxels and the
response tables on it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np

from .spectral import Pulse, SpectralBioheat

__all__ = ["DEFAULT_MEMORY_BUDGET_BYTES", "DriverSettings", "RunContext", "HotBox", "pulse_powers"]

#: Memory a protocol may use in the thermal solver (tables, spectra, full-grid maps).
DEFAULT_MEMORY_BUDGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class DriverSettings:
    """How :func:`~fusplan.bioheat.simulate_pulses` samples and bounds a run.

    Attributes
    ----------
    thermometry_voxel_mm, thermometry_frame_s
        MR thermometry model: average over a voxel box aligned with the grid axes and a
        sliding frame window (None: titrate and report the voxel peak).
    dose_floor_c : float
        Voxels that never exceed this temperature get their dose and peak from coarse
        snapshots at the end of each pulse (their dose is below ``0.25**(43 - floor)`` x
        protocol minutes, 0.03 CEM43 for 39 C over 8 min; their peak may read low by
        ~0.2 C where it comes late in the cooling).
    focus_interval_s : float
        Sampling of the focus curve while a pulse is on (coarser in cooling).
    dose_rtol : float
        Per-step relative tolerance of the adaptive CEM43 integration.
    memory_budget_bytes : int
        Refuse (FusplanInputError naming the protocol keys) a run whose estimated
        memory exceeds this (default 2 GiB).
    max_power_w : float, optional
        Refuse a titration that needs more power than this.
    pulse_names : tuple of str, optional
        What to call each pulse in messages, e.g. ``"clt.yaml: sonication entry 3"`` (the
        protocol file and the key of its entry, as validation errors name it);
        default ``"sonication <i>"`` counted from 1.
    displayed : (voxel_mm, frame_s), optional
        Also compute the peak and dose MR thermometry of that voxel (mm, along the grid
        axes) and frame (s) would show (``ThermalHistory.thermometry_peak_c`` and
        ``thermometry_dose_cem43``, :func:`fusplan.bioheat.displayed.displayed_maps`).
    """

    thermometry_voxel_mm: tuple[float, float, float] | None = None
    thermometry_frame_s: float | None = None
    dose_floor_c: float = 39.0
    focus_interval_s: float = 0.5
    dose_rtol: float = 1e-2
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES
    max_power_w: float | None = None
    pulse_names: tuple[str, ...] | None = None
    displayed: tuple[tuple[float, float, float], float] | None = None


@dataclass
class RunContext:
    """What every phase of one run reads: the solver, the sources and the settings."""

    solver: SpectralBioheat
    spectra: dict
    pulses: Sequence[Pulse]
    settings: DriverSettings
    t_end: float
    #: key -> (base key, whole-voxel shift): sources that are another's translate (table sharing).
    translations: dict = field(default_factory=dict)

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
