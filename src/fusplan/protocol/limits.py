"""Keys, defaults and sanity bounds of a protocol file.

The bounds are checked by :mod:`fusplan.protocol.validate`; :data:`PLAUSIBLE_RANGES` is
rendered in docs/plausible_ranges.md (a test keeps the page in step with it).
"""
from __future__ import annotations

from ..vocabulary import STAGES

__all__ = [
    "STAGES",
    "OFFSET_FRAMES",
    "POWER_KEYS",
    "SONICATION_KEYS",
    "TOP_LEVEL_KEYS",
    "FOCUS_PRIORS",
    "MAX_FOCUS_SPREAD",
    "REQUIRED_TOP_LEVEL_KEYS",
    "MAX_CONSOLE_ACOUSTIC_POWER_W",
    "MAX_POWER_W",
    "MAX_ABSORBED_POWER_W",
    "MAX_PEAK_C",
    "MAX_DURATION_S",
    "MAX_COOLING_S",
    "MAX_REPEAT",
    "MAX_SONICATIONS",
    "MAX_OFFSET_MM",
    "FOCUS_MARGIN_MM",
    "SPACING_RANGE_MM",
    "EXTENT_RANGE_MM",
    "MAX_GRID_VOXELS",
    "MAX_THRESHOLDS",
    "MAX_THERMOMETRY_VOXEL_MM",
    "MAX_FRAME_S",
    "PLAUSIBLE_RANGES",
    "DEFAULT_GRID",
    "DEFAULT_THRESHOLDS_CEM43",
    "BUNDLED_PROTOCOLS",
    "MAX_DISTINCT_FOCI",
    "MAX_UNCERTAINTY_SAMPLES",
    "MAX_WORKERS",
]

OFFSET_FRAMES = ("acpc", "ras")
POWER_KEYS = ("power_w", "absorbed_power_w", "peak_c")
SONICATION_KEYS = ("stage", *POWER_KEYS, "duration_s", "cooling_s", "repeat", "offset_mm", "offset_frame")
TOP_LEVEL_KEYS = ("name", "tissue", "transducer", "grid", "sonications", "thresholds_cem43", "thermometry",
                  "focus_prior")

#: Named priors on the focal spread of an uncalibrated plan: per-axis widening (LR, AP, SI)
#: of the heat source beyond what the physics gives (diffraction, skull transmission and
#: residual aberration), with the source. Pulkkinen et al. 2014 (Phys Med Biol 59:1679):
#: full-wave visco-elastic simulations of 8 sonications of the Zurich CLT patients gave
#: thermal foci 40 +/- 13 % smaller AP and 22 +/- 14 % smaller SI than MR thermometry
#: measured, i.e. measured / simulated 1 / 0.60 = 1.67 (AP) and 1 / 0.78 = 1.28 (SI); LR
#: takes the AP figure (the paper gives AP and SI; a hemispherical array's focus is
#: symmetric across its axis). Their rise ratio (1 / 0.76 = 1.32) is not applied: the
#: heating per joule comes from the skull model, and a titrated plan does not depend on it.
FOCUS_PRIORS = {
    "pulkkinen2014": ((1.67, 1.67, 1.28),
                      "Pulkkinen et al. 2014, Phys Med Biol 59:1679: simulated CLT thermal foci 40 % (AP) and "
                      "22 % (SI) smaller than measured; measured/simulated 1.67 AP (also LR), 1.28 SI"),
}
#: Widest per-axis prior spread (as calibration's plausible spread, fusplan.calibration.SPREAD_MAX).
MAX_FOCUS_SPREAD = 4.0
REQUIRED_TOP_LEVEL_KEYS = ("transducer", "sonications")

#: Sanity bounds. Values outside are typing mistakes or unit errors, not plans.
#: Plausible range of every number see :data:`PLAUSIBLE_RANGES` and docs/plausible_ranges.md.
#: Highest acoustic power a clinical transcranial console emits, in W. Cited: the 512-element
#: ExAblate 3000 (670 kHz) drove "800 W of acoustic power" (Acoustics Today 8(4) p. 13,
#: 2012). No public specification of the 1024-element ExAblate Neuro maximum was found
#: (searched 2026-11); clinical thalamotomy reports give delivered powers up to ~1.2-1.4 kW
#: (not re-verified), so 1500 W is an upper bound above every reported use, not a device
#: figure. A protocol (power_w given, or absorbed_power_w / peak_c converted or titrated) that
#: needs more is refused naming the file and key: fusplan.planner passes it as max_power_w.
MAX_CONSOLE_ACOUSTIC_POWER_W = 1500.0
MAX_POWER_W = MAX_CONSOLE_ACOUSTIC_POWER_W
MAX_ABSORBED_POWER_W = 1000.0
MAX_PEAK_C = 100.0
MAX_DURATION_S = 300.0
MAX_COOLING_S = 3600.0
MAX_REPEAT = 50
MAX_SONICATIONS = 200  # after expanding ``repeat``
MAX_OFFSET_MM = 15.0  # electronic steering range of a hemispherical array
FOCUS_MARGIN_MM = 5.0  # a steered focus stays this far inside the grid
SPACING_RANGE_MM = (0.0, 5.0)  # exclusive lower bound, inclusive upper bound
EXTENT_RANGE_MM = (10.0, 150.0)
MAX_GRID_VOXELS = 201**3
MAX_THRESHOLDS = 10
MAX_THERMOMETRY_VOXEL_MM = 10.0
MAX_FRAME_S = 30.0
#: Distinct foci (target + distinct ``offset_mm`` / ``offset_frame``) of one protocol. Each costs
#: one acoustic field and one thermal response table (~45 MB and ~3 s at the default grid), so
#: the thermal solver's 2 GiB budget (fusplan.bioheat.run) holds about 40; 24 leaves room for
#: finer grids and is checked when the file is read, not after the acoustics. Clinical
#: thalamotomy protocols steer to a handful of points.
MAX_DISTINCT_FOCI = 24

#: Bounds of numeric command-line options (docs/contract.md), checked when the command is parsed.
#: ``--uncertainty N``: 200 samples take ~20 s; percentiles of 2000 samples are within ~2 % of
#: their limit, so more only costs time (each 8 samples add one protocol run) and memory.
MAX_UNCERTAINTY_SAMPLES = 2000
#: ``--workers N`` (plan, simulate, batch): more processes than this is a typing mistake (each
#: worker holds its own copy of the scan and the heat sources).
MAX_WORKERS = 256

#: Plausible range (inclusive) of every number a protocol gives, by key path, with its
#: unit and source; checked after the type and sign checks, before anything is built.
#: Values outside are unit or typing mistakes (1 Hz instead of 1 MHz, a 1 ns sonication),
#: or inputs that make the model meaningless. The table is rendered in
#: docs/plausible_ranges.md.
PLAUSIBLE_RANGES: dict[str, tuple[float, float, str]] = {
    # tissue: IT'IS database v4.1 soft tissues span fat (911 kg/m^3, 2348 J/kg/K,
    # 0.21 W/m/K, 1440 m/s) to CSF/water (1007, 4096, 0.57, 1504); blood 1050, 3617
    "tissue.density_kg_m3": (900.0, 1200.0, "kg/m^3"),
    "tissue.specific_heat_j_kg_k": (2000.0, 4500.0, "J/(kg K)"),
    "tissue.conductivity_w_m_k": (0.1, 1.0, "W/(m K)"),
    "tissue.perfusion_ml_min_kg": (0.0, 3000.0, "mL/min/kg"),  # IT'IS: white 212, grey 764
    "tissue.blood_density_kg_m3": (1000.0, 1100.0, "kg/m^3"),
    "tissue.blood_specific_heat_j_kg_k": (3000.0, 4200.0, "J/(kg K)"),
    "tissue.blood_temperature_c": (30.0, 42.0, "C"),  # deep hypothermia .. high fever
    "tissue.baseline_temperature_c": (30.0, 42.0, "C"),
    # brain 0.59 dB/(cm MHz^1.2): ~4 Np/m at 650 kHz, ~25 Np/m at 3 MHz; CSF 0.03
    "tissue.attenuation_np_m": (0.01, 50.0, "Np/m"),
    "tissue.sound_speed_m_s": (1400.0, 1700.0, "m/s"),
    # transducer: transcranial arrays run 220-1000 kHz; HIFU bowls up to ~3 MHz
    "transducer.frequency_khz": (100.0, 3000.0, "kHz"),
    "transducer.elements": (1, 4096, "elements"),  # ExAblate Neuro 1024
    "transducer.radius_mm": (10.0, 300.0, "mm"),  # ExAblate Neuro 150
    "transducer.aperture_mm": (1.0, 600.0, "mm"),
    "transducer.element_area_mm2": (0.1, 5000.0, "mm^2"),
    "transducer.fwhm_mm": (0.2, 50.0, "mm"),
    "transducer.brain_path_mm": (0.0, 200.0, "mm"),  # half a head is ~70 mm
    # grid: 0.05 mm is lambda/45 at 650 kHz in brain
    "grid.spacing_mm": (0.05, 5.0, "mm"),
    # thermometry: clinical PRF thermometry ~1.1 x 1.1 x 3 mm, 3-4 s frames; a voxel
    # wider than the focal spot averages the peak away
    "thermometry.voxel_mm": (0.2, 5.0, "mm"),
    "thermometry.frame_s": (0.1, 10.0, "s"),
    # sonications: below 0.1 s a "sonication" is a pulse, outside the bioheat model here
    "sonications.duration_s": (0.1, MAX_DURATION_S, "s"),
    "thresholds_cem43": (0.01, 1e6, "CEM43 min"),
}

DEFAULT_GRID = {"spacing_mm": 0.5, "extent_mm": 40.0}
#: Reported when a protocol lists none: the console contours (17, 240 CEM43) and the day-1
#: T2 / T1 lesion contours (100, 200 CEM43; Huang 2018, fusplan.clinical).
DEFAULT_THRESHOLDS_CEM43 = (17.0, 100.0, 200.0, 240.0)
BUNDLED_PROTOCOLS = ("clt", "clt_single", "vim")

