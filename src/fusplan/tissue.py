"""Thermal and acoustic properties of tissue, with presets and validated overrides.

The Pennes bioheat equation reads
``rho c dT/dt = div(k grad T) - w_b rho_b c_b (T - T_a) + Q``.
A :class:`Tissue` stores every coefficient in SI units (perfusion as the clinical
mL of blood per minute per kg of tissue) and derives the quantities the solvers use:
thermal diffusivity ``D = k / (rho c)``, perfusion rate ``P = w_b rho_b c_b / (rho c)``
(1/s, ``w_b`` the volumetric perfusion in 1/s) and perfusion length
``L = sqrt(k / (w_b rho_b c_b))``.

Preset values (see docs/physics.md): ``brain`` from the IT'IS database as used by
BabelBrain and PRESTUS (rho 1046, c 3630, k 0.51, 559 mL/min/kg, c 1546 m/s,
0.59 dB/(cm MHz^1.2) -> ~4.0 Np/m at 650 kHz); ``grey_matter``, ``white_matter`` and
``csf`` from BabelBrain's tissue table (k, c, perfusion) with IT'IS densities
(1045, 1041, 1007 kg/m^3), sound speeds (1500, 1552.5, 1504 m/s) and attenuation
(grey/white as brain; CSF ~ water, 0.03 Np/m at 650 kHz).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from collections.abc import Mapping

from .errors import FusplanInputError

__all__ = ["Tissue", "TISSUE_PRESETS", "tissue_from_spec"]


@dataclass(frozen=True)
class Tissue:
    """Homogeneous tissue properties (SI units; perfusion in mL/min/kg).

    Parameters
    ----------
    density_kg_m3, specific_heat_j_kg_k, conductivity_w_m_k : float
        Tissue density, specific heat capacity and thermal conductivity.
    perfusion_ml_min_kg : float
        Blood perfusion, mL of blood per minute per kg of tissue (0 = none).
    blood_density_kg_m3, blood_specific_heat_j_kg_k : float
        Blood properties in the perfusion term.
    blood_temperature_c : float
        Arterial blood temperature ``T_a``.
    baseline_temperature_c : float
        Tissue temperature before the first sonication.
    attenuation_np_m, sound_speed_m_s : float
        Acoustic attenuation (at the working frequency) and speed of sound.
    """

    density_kg_m3: float = 1046.0
    specific_heat_j_kg_k: float = 3630.0
    conductivity_w_m_k: float = 0.51
    perfusion_ml_min_kg: float = 559.0
    blood_density_kg_m3: float = 1050.0
    blood_specific_heat_j_kg_k: float = 3617.0
    blood_temperature_c: float = 37.0
    baseline_temperature_c: float = 37.0
    attenuation_np_m: float = 4.0
    sound_speed_m_s: float = 1546.0

    @property
    def heat_capacity_j_m3_k(self) -> float:
        """Volumetric heat capacity ``rho c`` in J/(m^3 K)."""
        return self.density_kg_m3 * self.specific_heat_j_kg_k

    @property
    def diffusivity_m2_s(self) -> float:
        """Thermal diffusivity ``k / (rho c)`` in m^2/s."""
        return self.conductivity_w_m_k / self.heat_capacity_j_m3_k

    @property
    def perfusion_per_s(self) -> float:
        """Volumetric perfusion ``w_b`` in 1/s (m^3 blood per s per m^3 tissue)."""
        return self.perfusion_ml_min_kg * 1e-6 / 60.0 * self.density_kg_m3

    @property
    def perfusion_rate_per_s(self) -> float:
        """Perfusion rate ``P = w_b rho_b c_b / (rho c)`` in 1/s."""
        return self.perfusion_per_s * self.blood_density_kg_m3 * self.blood_specific_heat_j_kg_k / self.heat_capacity_j_m3_k

    @property
    def perfusion_length_mm(self) -> float:
        """Perfusion length ``sqrt(k / (w_b rho_b c_b))`` in mm (inf without perfusion)."""
        w = self.perfusion_per_s * self.blood_density_kg_m3 * self.blood_specific_heat_j_kg_k
        return math.inf if w == 0 else 1e3 * math.sqrt(self.conductivity_w_m_k / w)


TISSUE_PRESETS: dict[str, Tissue] = {
    "brain": Tissue(),
    "grey_matter": Tissue(
        density_kg_m3=1045.0, specific_heat_j_kg_k=3696.0, conductivity_w_m_k=0.55,
        perfusion_ml_min_kg=764.0, sound_speed_m_s=1500.0,
    ),
    "white_matter": Tissue(
        density_kg_m3=1041.0, specific_heat_j_kg_k=3583.0, conductivity_w_m_k=0.48,
        perfusion_ml_min_kg=212.0, sound_speed_m_s=1552.5,
    ),
    "csf": Tissue(
        density_kg_m3=1007.0, specific_heat_j_kg_k=4096.0, conductivity_w_m_k=0.57,
        perfusion_ml_min_kg=0.0, attenuation_np_m=0.03, sound_speed_m_s=1504.0,
    ),
}

_POSITIVE = (
    "density_kg_m3", "specific_heat_j_kg_k", "conductivity_w_m_k", "blood_density_kg_m3",
    "blood_specific_heat_j_kg_k", "sound_speed_m_s",
)
_NON_NEGATIVE = ("perfusion_ml_min_kg", "attenuation_np_m")
_TEMPERATURES = ("blood_temperature_c", "baseline_temperature_c")


def tissue_from_spec(spec: str | Mapping) -> Tissue:
    """Build a :class:`Tissue` from the protocol's ``tissue:`` value.

    Parameters
    ----------
    spec : str or mapping
        A preset name (``brain``, ``grey_matter``, ``white_matter``, ``csf``) or a
        mapping with an optional ``preset`` (default ``brain``) and field overrides.

    Raises
    ------
    FusplanInputError
        Unknown preset or key, or a value out of its physical range (message names the key).
    """
    if isinstance(spec, str):
        spec = {"preset": spec}
    if not isinstance(spec, Mapping):
        raise FusplanInputError(f"tissue must be a preset name or a mapping (got {type(spec).__name__})")
    preset = spec.get("preset", "brain")
    if preset not in TISSUE_PRESETS:
        raise FusplanInputError(
            f"tissue.preset: unknown preset {preset!r} (choose from {', '.join(TISSUE_PRESETS)})"
        )
    names = {f.name for f in fields(Tissue)}
    overrides = {}
    for key, value in spec.items():
        if key == "preset":
            continue
        if key not in names:
            raise FusplanInputError(f"tissue.{key}: unknown key (allowed: preset, {', '.join(sorted(names))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FusplanInputError(f"tissue.{key} must be a finite number (got {value!r})")
        if key in _POSITIVE and value <= 0:
            raise FusplanInputError(f"tissue.{key} must be > 0 (got {value})")
        if key in _NON_NEGATIVE and value < 0:
            raise FusplanInputError(f"tissue.{key} must be >= 0 (got {value})")
        if key in _TEMPERATURES and not 0 <= value <= 45:
            raise FusplanInputError(f"tissue.{key} must be between 0 and 45 C (got {value})")
        overrides[key] = float(value)
    return replace(TISSUE_PRESETS[preset], **overrides)
