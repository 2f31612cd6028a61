"""Pennes bioheat solvers: exact Fourier propagator, superposition, heterogeneous scheme.

Equation (rise ``theta = T - T_a`` over the arterial temperature)::

    d theta/dt = D lap(theta) - P theta + Q / (rho c)

Modules (data flows down the list):

- :mod:`~fusplan.bioheat.spectral`: :class:`Pulse`, the ``|k|^2`` grid (built once,
  :func:`~fusplan.bioheat.spectral.wavenumbers_squared`), the padding rule and the
  exact homogeneous propagator :class:`SpectralBioheat`;
- :mod:`~fusplan.bioheat.tables`: step-response tables on a box of voxels and
  superposition by Hermite interpolation;
- :mod:`~fusplan.bioheat.run`: the state a run of the driver shares (settings, hot box);
- :mod:`~fusplan.bioheat.titration`: the power of each ``peak_c`` pulse (always ends);
- :mod:`~fusplan.bioheat.pulses`: :func:`simulate_pulses`, the pulse driver (hot box,
  titration, focus curve, snapshots, adaptive CEM43; bounded memory);
- :mod:`~fusplan.bioheat.stepping`: :func:`kspace_stepping` (k-Wave-style
  reference) and :class:`HeterogeneousBioheat` (ETDRK2 for varying tissue).

Thread counts are an explicit ``threads`` keyword (the solvers' constructors,
:func:`simulate_pulses`, :func:`kspace_stepping`), resolved once by
:class:`fusplan.execution.ExecutionOptions` at the entry point.
"""
from .pulses import ThermalHistory, simulate_pulses
from .run import DEFAULT_MEMORY_BUDGET_BYTES, DriverSettings
from .spectral import Pulse, SpectralBioheat, padded_length, wavenumbers_squared
from .stepping import HeterogeneousBioheat, SteppingResult, kspace_stepping
from .tables import ResponseTable, hermite_weights, table_rise
from .titration import PulseResult

__all__ = [
    "Pulse",
    "padded_length",
    "wavenumbers_squared",
    "SpectralBioheat",
    "ResponseTable",
    "hermite_weights",
    "table_rise",
    "PulseResult",
    "ThermalHistory",
    "DriverSettings",
    "DEFAULT_MEMORY_BUDGET_BYTES",
    "simulate_pulses",
    "kspace_stepping",
    "SteppingResult",
    "HeterogeneousBioheat",
]
