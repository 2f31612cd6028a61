"""CT -> acoustic properties of bone, and plane-wave transmission through interfaces and layers.

Three HU mappings, chosen by ``transducer.bone_mapping`` (:data:`BONE_MAPPINGS`), each a
function of HU over the whole bone range (none saturates at 1000 HU):

- ``mcdannold2019`` (default): the mapping McDannold, White & Cosgrove fitted to the heating
  of 431 clinical sonications and validated on 396 others (Phys Rev Research 1:033205, 2019),
  in the form BabelBrain codes it (ProteusMRIgHIFU/BabelBrain, ``TranscranialModeling``):
  density linear in HU through air (1.293 kg/m^3 at -1000 HU) and soft tissue (1041 kg/m^3
  at 27 HU), ``rho = 1.01237 HU + 1013.67``; speed ``1 / P_c(rho)`` and attenuation
  ``P_a(rho) f / 660 kHz`` (Np/m), ``P_c`` and ``P_a`` fourth-order polynomials in density
  (coefficients in :data:`MCDANNOLD_SLOWNESS_POLY` and :data:`MCDANNOLD_ATTENUATION_POLY`).
  At 650 kHz: 2896 m/s and 21.9 dB/(cm MHz) at 1000 HU, 3594 m/s and 25.7 at 1600 HU,
  2324 m/s and 27.8 at 600 HU, 1920 m/s and 50.6 at 300 HU: porous diploe costs energy.
- ``webb2018``: speed linear in HU, ``0.75 HU + 1320 m/s`` (Webb et al. 2018, IEEE TUFFC
  65:1111, Tables I-II, GE 120 kVp bone kernel); attenuation
  ``26 Np/cm x f[MHz]^1.3 x exp(-0.0016 HU)`` (Webb et al. 2020/2021, IEEE TUFFC 68:1532,
  Table IV, same scanner settings; as BabelBrain tabulates them); density as
  ``mcdannold2019`` (Webb's papers give none).
- ``aubry2003``: the porosity model of Aubry et al. 2003 (JASA 113:84), fusplan's mapping
  before issue 17: porosity ``psi = 1 - HU / 1000`` clipped to [0, 1]; density and speed
  linear between water (1000 kg/m^3, 1500 m/s) and bone (2200 kg/m^3, 2900 m/s); one bone
  attenuation, 13.3 dB/(cm MHz) (physics.md, BabelBrain's tissue table). It saturates at
  1000 HU and its attenuation ignores HU, so SDR changes nothing through it.

Critical angle: the clinical recipe switches an element off at asin(c_water / 2900 m/s)
(Kranion's refraction speed, also Aubry's dense bone), whatever the mapping; in addition a
ray whose refraction into its own bone (mapping speed) is beyond total reflection transmits
nothing (:func:`interface_power_transmission` is 0 there).

Sound-speed uncertainty (for the residual phase error after CT-based correction): the
published speeds for dense bone disagree: Aubry 2003 2900 m/s, Kranion's phase speed
2652 m/s, Pichardo 2011 cortical 120 f + 2416 = 2494 m/s at 650 kHz. Their standard
deviation, 167 m/s, is 6.2 % of their mean (2682 m/s); the default ``speed_uncertainty``
applies 6 % of the bone's speed excess over water, fully correlated along each path (how
it is correlated between elements: :mod:`.aberration`).

Transmission across an interface and through a layer is the fluid (no shear) plane-wave
theory of Brekhovskikh (Waves in Layered Media, 1980): power transmission
``4 Z1 Z2 cos1 cos2 / (Z2 cos1 + Z1 cos2)^2``. A ray model cannot follow reverberation
inside the bone coherently; :func:`layer_power_transmission_incoherent` sums it
incoherently (the exact layer formula averaged over a wavelength of thickness, which the
~1 cm element footprint does on a real skull).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Np per dB.
_NP_PER_DB = math.log(10.0) / 20.0

#: ``transducer.bone_mapping`` values, with the source each one cites.
BONE_MAPPINGS = {
    "mcdannold2019": "McDannold, White & Cosgrove 2019, Phys Rev Research 1:033205 (clinically fitted; as coded in BabelBrain)",
    "webb2018": "Webb et al. 2018, IEEE TUFFC 65:1111 (speed) and 2021, IEEE TUFFC 68:1532 (attenuation); "
                "GE 120 kVp bone kernel",
    "aubry2003": "Aubry et al. 2003, JASA 113:84 (porosity); attenuation 13.3 dB/cm/MHz, not a function of HU",
}
#: Density through air (1.293 kg/m^3 at -1000 HU) and soft tissue (1041 kg/m^3 at 27 HU):
#: slope (kg/m^3 per HU) and intercept (BabelBrain's ``HUtoDensityAirTissue``, used with McDannold).
AIR_TISSUE_DENSITY = (1.01237293, 1013.66593)
#: McDannold 2019: slowness (s/m) = sum c_n rho^n, n = 0..4 (rho in kg/m^3).
MCDANNOLD_SLOWNESS_POLY = (1.24e-3, -7.63e-7, 1.69e-10, 5.31e-16, -2.79e-18)
#: McDannold 2019: attenuation (Np/m at 660 kHz, linear in frequency) = sum c_n rho^n, n = 0..4.
MCDANNOLD_ATTENUATION_POLY = (5.71e3, -9.02, 5.40e-3, -1.41e-6, 1.36e-10)
MCDANNOLD_REFERENCE_HZ = 660e3
#: Webb 2018 Tables I-II (GE, 120 kVp, bone kernel): speed = slope x HU + intercept.
WEBB_SPEED = (0.75, 1320.0)
#: Webb 2021 Table IV (same settings): attenuation = alpha0 (Np/cm) x f[MHz]^beta x exp(c HU).
WEBB_ATTENUATION = (26.0, 1.3, -0.0016)


def _poly(coefficients, x):
    return sum(c * x**n for n, c in enumerate(coefficients))


@dataclass(frozen=True)
class BoneAcoustics:
    """HU -> density, speed and attenuation of bone, and the surrounding water.

    Attributes
    ----------
    mapping : {"mcdannold2019", "webb2018", "aubry2003"}
        Which published mapping (module docstring; :data:`BONE_MAPPINGS`).
    hu_bone : float
        HU of zero-porosity bone (``aubry2003`` only; Aubry 2003: 1000).
    density_water_kg_m3, density_bone_kg_m3 : float
        1000 and 2200 kg/m^3 (Aubry 2003; the bone value is used by ``aubry2003`` only).
    speed_water_m_s, speed_bone_m_s : float
        1500 m/s (BabelBrain's water, brain differs by ~3 %) and 2900 m/s (Aubry 2003's
        dense bone and Kranion's refraction speed: it sets the critical angle for every mapping).
    attenuation_db_cm_mhz : float
        Bone attenuation of ``aubry2003``, 13.3 dB/(cm MHz), linear in frequency (physics.md).
    speed_uncertainty : float
        Relative uncertainty of the bone's speed excess over water (0.06: spread of the
        published mappings, see the module docstring).
    """

    mapping: str = "mcdannold2019"
    hu_bone: float = 1000.0
    density_water_kg_m3: float = 1000.0
    density_bone_kg_m3: float = 2200.0
    speed_water_m_s: float = 1500.0
    speed_bone_m_s: float = 2900.0
    attenuation_db_cm_mhz: float = 13.3
    speed_uncertainty: float = 0.06

    def __post_init__(self):
        if self.mapping not in BONE_MAPPINGS:
            raise ValueError(f"bone mapping must be one of {', '.join(BONE_MAPPINGS)} (got {self.mapping!r})")

    def porosity(self, hu) -> np.ndarray:
        """Porosity ``1 - HU / hu_bone`` clipped to [0, 1] (``aubry2003``)."""
        return np.clip(1.0 - np.asarray(hu, float) / self.hu_bone, 0.0, 1.0)

    def density_kg_m3(self, hu) -> np.ndarray:
        """Density (kg/m^3) from HU."""
        if self.mapping == "aubry2003":
            psi = self.porosity(hu)
            return psi * self.density_water_kg_m3 + (1 - psi) * self.density_bone_kg_m3
        slope, intercept = AIR_TISSUE_DENSITY
        return slope * np.asarray(hu, float) + intercept

    def speed_m_s(self, hu) -> np.ndarray:
        """Longitudinal speed of sound (m/s) from HU."""
        if self.mapping == "mcdannold2019":
            return 1.0 / _poly(MCDANNOLD_SLOWNESS_POLY, self.density_kg_m3(hu))
        if self.mapping == "webb2018":
            return WEBB_SPEED[0] * np.asarray(hu, float) + WEBB_SPEED[1]
        return self.speed_water_m_s + (1 - self.porosity(hu)) * (self.speed_bone_m_s - self.speed_water_m_s)

    def attenuation_np_m(self, hu, frequency_hz: float) -> np.ndarray:
        """Bone amplitude attenuation (Np/m) at ``frequency_hz`` for HU ``hu``."""
        hu = np.asarray(hu, float)
        if self.mapping == "mcdannold2019":
            return _poly(MCDANNOLD_ATTENUATION_POLY, self.density_kg_m3(hu)) * frequency_hz / MCDANNOLD_REFERENCE_HZ
        if self.mapping == "webb2018":
            alpha0, beta, c = WEBB_ATTENUATION
            return 100.0 * alpha0 * (frequency_hz / 1e6) ** beta * np.exp(c * hu)
        return np.full(hu.shape, self.attenuation_db_cm_mhz * 100.0 * (frequency_hz / 1e6) * _NP_PER_DB)

    @property
    def critical_angle_deg(self) -> float:
        """asin(c_water / c_bone): the clinical recipe switches elements off beyond it."""
        return math.degrees(math.asin(self.speed_water_m_s / self.speed_bone_m_s))

    def to_dict(self) -> dict:
        """JSON-ready: the mapping, its source and the constants that apply to it."""
        doc = {"mapping": self.mapping, "source": BONE_MAPPINGS[self.mapping],
               "density_water_kg_m3": self.density_water_kg_m3, "speed_water_m_s": self.speed_water_m_s,
               "critical_speed_m_s": self.speed_bone_m_s, "speed_uncertainty": self.speed_uncertainty}
        if self.mapping == "aubry2003":
            doc.update(hu_bone=self.hu_bone, density_bone_kg_m3=self.density_bone_kg_m3,
                       attenuation_db_cm_mhz=self.attenuation_db_cm_mhz)
        return doc


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
                                        frequency_hz: float, path_attenuation_np=None) -> np.ndarray:
    """Power through a flat bone layer in water, reverberation summed incoherently.

    ``T = T_in T_out A / (1 - R^2 A^2)`` with ``A = exp(-2 alpha d / cos(theta_bone))`` and
    ``R = 1 - T_in`` (both faces alike, properties of ``hu_layer``). Zero beyond the critical
    angle. ``path_attenuation_np``, when given, replaces ``alpha d / cos(theta_bone)`` (the
    attenuation integrated along a layered path, Np).
    """
    cos_w = np.cos(np.radians(incidence_deg))
    rho_b, c_b = bone.density_kg_m3(hu_layer), bone.speed_m_s(hu_layer)
    cos_b = snell_cos(cos_w, bone.speed_water_m_s, c_b)
    z_w = bone.density_water_kg_m3 * bone.speed_water_m_s
    t_face = interface_power_transmission(z_w, rho_b * c_b, cos_w, cos_b)
    if path_attenuation_np is None:
        path_m = np.asarray(thickness_mm, float) * 1e-3 / np.nan_to_num(cos_b, nan=1.0)
        path_attenuation_np = bone.attenuation_np_m(hu_layer, frequency_hz) * path_m
    a = np.exp(-2 * np.asarray(path_attenuation_np, float))
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
    k_b = omega / c_b + 1j * float(bone.attenuation_np_m(hu_layer, frequency_hz))
    k_x = omega / bone.speed_water_m_s * sin_w
    k_z = np.sqrt(k_b**2 - k_x**2)
    cos_b = k_z / k_b
    z_w = bone.density_water_kg_m3 * bone.speed_water_m_s / math.cos(math.radians(incidence_deg))
    z_b = rho_b * (omega / k_b) / cos_b
    d = np.asarray(thickness_mm, float) * 1e-3
    t = 1.0 / (np.cos(k_z * d) - 0.5j * (z_b / z_w + z_w / z_b) * np.sin(k_z * d))
    return np.abs(t) ** 2
