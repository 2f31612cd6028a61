"""CT -> acoustic properties of bone, and plane-wave transmission through interfaces and layers.

HU mapping (default, configurable through :class:`BoneAcoustics`): the porosity model of
Aubry et al. 2003 (JASA 113:84): porosity ``psi = 1 - HU / hu_bone`` clipped to [0, 1];
density and speed linear between water and dense bone,
``rho = psi rho_w + (1 - psi) rho_bone``, ``c = c_w + (1 - psi)(c_bone - c_w)``, with
``rho_bone = 2200 kg/m^3``, ``c_bone = 2900 m/s``, ``hu_bone = 1000``. ``c_bone = 2900 m/s``
is also the speed Kranion and the clinical recipe use for refraction and the critical
angle (30.7 deg); the mapping's fastest bone therefore sets the critical angle.

Attenuation: no consensus relates HU to attenuation at 650 kHz (Webb et al. 2021 IEEE TUFFC
68:1532; Clinard et al. 2025), so bone attenuation is one constant along the bone path,
13.3 dB/(cm MHz) scaled linearly with frequency (the skull value of physics.md, BabelBrain's
tissue table), i.e. 99.5 Np/m (amplitude) at 650 kHz.

Sound-speed uncertainty (for the residual phase error after CT-based correction): the
published mappings for dense bone disagree: Aubry 2003 2900 m/s, Kranion's phase speed
2652 m/s, Pichardo 2011 cortical 120 f + 2416 = 2494 m/s at 650 kHz. Their standard
deviation, 167 m/s, is 6.2 % of their mean (2682 m/s); the default ``speed_uncertainty``
applies 6 % of the bone's speed excess over water, fully correlated along each path.

Transmission across an interface and through a layer is the fluid (no shear) plane-wave
theory of Brekhovskikh (Waves in Layered Media, 1980): power transmission
``4 Z1 Z2 cos1 cos2 / (Z2 cos1 + Z1 cos2)^2``. A ray model cannot follow reverberation
inside the bone coherently; :func:`layer_power_transmission_incoherent` sums it
incoherently (the exact layer formula averaged over a wavelength of thickness, which the
~1 cm element footprint does on a real skull).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: Np per dB.
_NP_PER_DB = math.log(10.0) / 20.0


@dataclass(frozen=True)
class BoneAcoustics:
    """HU -> density, speed and attenuation of bone, and the surrounding water.

    Attributes
    ----------
    hu_bone : float
        HU of zero-porosity bone (Aubry 2003: 1000).
    density_water_kg_m3, density_bone_kg_m3 : float
        1000 and 2200 kg/m^3 (Aubry 2003).
    speed_water_m_s, speed_bone_m_s : float
        1500 m/s (BabelBrain's water, brain differs by ~3 %) and 2900 m/s (Aubry 2003;
        Kranion's refraction speed).
    attenuation_db_cm_mhz : float
        Bone attenuation, 13.3 dB/(cm MHz), linear in frequency (physics.md; BabelBrain).
    speed_uncertainty : float
        Relative uncertainty of the bone's speed excess over water (0.06: spread of the
        published mappings, see the module docstring).
    """

    hu_bone: float = 1000.0
    density_water_kg_m3: float = 1000.0
    density_bone_kg_m3: float = 2200.0
    speed_water_m_s: float = 1500.0
    speed_bone_m_s: float = 2900.0
    attenuation_db_cm_mhz: float = 13.3
    speed_uncertainty: float = 0.06

    def porosity(self, hu) -> np.ndarray:
        """Porosity ``1 - HU / hu_bone`` clipped to [0, 1]."""
        return np.clip(1.0 - np.asarray(hu, float) / self.hu_bone, 0.0, 1.0)

    def density_kg_m3(self, hu) -> np.ndarray:
        """Density (kg/m^3) from HU."""
        psi = self.porosity(hu)
        return psi * self.density_water_kg_m3 + (1 - psi) * self.density_bone_kg_m3

    def speed_m_s(self, hu) -> np.ndarray:
        """Longitudinal speed of sound (m/s) from HU."""
        return self.speed_water_m_s + (1 - self.porosity(hu)) * (self.speed_bone_m_s - self.speed_water_m_s)

    def attenuation_np_m(self, frequency_hz: float) -> float:
        """Bone amplitude attenuation (Np/m) at ``frequency_hz``."""
        return self.attenuation_db_cm_mhz * 100.0 * (frequency_hz / 1e6) * _NP_PER_DB

    @property
    def critical_angle_deg(self) -> float:
        """asin(c_water / c_bone): beyond it no longitudinal wave enters the bone."""
        return math.degrees(math.asin(self.speed_water_m_s / self.speed_bone_m_s))

    def to_dict(self) -> dict:
        """JSON-ready constants, with the mapping's name."""
        return {"mapping": "porosity (Aubry et al. 2003)", **asdict(self)}


def snell_cos(cos_incidence, speed_from_m_s, speed_to_m_s) -> np.ndarray:
    """Cosine of the refraction angle (NaN beyond the critical angle)."""
    sin_in = np.sqrt(np.clip(1.0 - np.asarray(cos_incidence, float) ** 2, 0.0, 1.0))
    sin_out = sin_in * np.asarray(speed_to_m_s, float) / np.asarray(speed_from_m_s, float)
    with np.errstate(invalid="ignore"):
        return np.where(sin_out <= 1.0, np.sqrt(np.clip(1.0 - sin_out**2, 0.0, 1.0)), np.nan)


def interface_power_transmission(impedance_from, impedance_to, cos_from, cos_to) -> np.ndarray:
    """Fraction of incident power transmitted across a fluid-fluid interface (0 where NaN)."""
    z1, z2 = np.asarray(impedance_from, float), np.asarray(impedance_to, float)
    c1, c2 = np.asarray(cos_from, float), np.asarray(cos_to, float)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 on rays that meet no bone: NaN -> 0 below
        t = 4 * z1 * z2 * c1 * c2 / (z2 * c1 + z1 * c2) ** 2
    return np.nan_to_num(t, nan=0.0)


def layer_power_transmission_incoherent(bone: BoneAcoustics, hu_layer, thickness_mm, incidence_deg,
                                        frequency_hz: float) -> np.ndarray:
    """Power through a flat bone layer in water, reverberation summed incoherently.

    ``T = T_in T_out A / (1 - R^2 A^2)`` with ``A = exp(-2 alpha d / cos(theta_bone))`` and
    ``R = 1 - T_in`` (both faces alike). Zero beyond the critical angle.
    """
    cos_w = np.cos(np.radians(incidence_deg))
    rho_b, c_b = bone.density_kg_m3(hu_layer), bone.speed_m_s(hu_layer)
    cos_b = snell_cos(cos_w, bone.speed_water_m_s, c_b)
    z_w = bone.density_water_kg_m3 * bone.speed_water_m_s
    t_face = interface_power_transmission(z_w, rho_b * c_b, cos_w, cos_b)
    path_m = np.asarray(thickness_mm, float) * 1e-3 / np.nan_to_num(cos_b, nan=1.0)
    a = np.exp(-2 * bone.attenuation_np_m(frequency_hz) * path_m)
    return np.where(np.isnan(cos_b), 0.0, t_face**2 * a / (1 - (1 - t_face) ** 2 * a**2))


def layer_power_transmission_exact(bone: BoneAcoustics, hu_layer: float, thickness_mm, incidence_deg: float,
                                   frequency_hz: float) -> np.ndarray:
    """Exact (coherent) plane-wave power transmission through a flat lossy fluid layer in water.

    Brekhovskikh's layer formula for equal half-spaces:
    ``T = 1 / (cos(k d) - i/2 (Z_b/Z_w + Z_w/Z_b) sin(k d))``, ``k`` the complex normal
    wavenumber in the layer, ``Z = rho c / cos(theta)`` the normal impedances; returns ``|T|^2``.
    """
    omega = 2 * math.pi * frequency_hz
    rho_b, c_b = float(bone.density_kg_m3(hu_layer)), float(bone.speed_m_s(hu_layer))
    sin_w = math.sin(math.radians(incidence_deg))
    k_b = omega / c_b + 1j * bone.attenuation_np_m(frequency_hz)
    k_x = omega / bone.speed_water_m_s * sin_w
    k_z = np.sqrt(k_b**2 - k_x**2)
    cos_b = k_z / k_b
    z_w = bone.density_water_kg_m3 * bone.speed_water_m_s / math.cos(math.radians(incidence_deg))
    z_b = rho_b * (omega / k_b) / cos_b
    d = np.asarray(thickness_mm, float) * 1e-3
    t = 1.0 / (np.cos(k_z * d) - 0.5j * (z_b / z_w + z_w / z_b) * np.sin(k_z * d))
    return np.abs(t) ** 2
