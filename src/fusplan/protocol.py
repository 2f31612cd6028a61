"""Sonication protocols: load, validate and override.

A protocol file (YAML or JSON, see the contract) names the tissue, the transducer,
the planning grid, the list of sonications, the CEM43 thresholds to report and an
optional MR thermometry model. :func:`load_protocol` validates every key and turns
the file into a frozen, hashable and picklable :class:`Protocol` (batch runs send it
to worker processes). Bad input raises :class:`~fusplan.errors.FusplanInputError`
with a one-line message naming the file and the key path, for instance
``clt.yaml: sonications[2].duration_s must be > 0 (got 0)``. Indices in key paths
refer to the list in the file, counted from 0 (as in JSON paths); the ``index`` of a
:class:`Sonication` counts the expanded list from 1.

Override grammar (:func:`override_protocol`, used by batch sweeps)
-------------------------------------------------------------------
An override is ``key -> value``; keys are dotted paths applied to the protocol's
raw mapping (:attr:`Protocol.spec`) before the whole protocol is validated again:

- a top-level key (``name``, ``tissue``, ``transducer``, ``grid``, ``sonications``,
  ``thresholds_cem43``, ``thermometry``) replaces its whole value (``thermometry: None``
  removes the thermometry model);
- ``tissue.<key>`` (a string preset becomes ``{preset: <name>, <key>: value}``),
  ``transducer.<key>``, ``grid.spacing_mm``, ``grid.extent_mm``,
  ``thermometry.voxel_mm``, ``thermometry.frame_s``;
- ``<selector>.<field>`` with ``<field>`` one of ``power_w``, ``absorbed_power_w``,
  ``peak_c``, ``duration_s``, ``cooling_s``, ``repeat``, ``offset_mm``,
  ``offset_frame``, and ``<selector>`` one of ``sonications`` (every entry),
  ``alignment`` / ``verification`` / ``treatment`` (every entry of that stage) or
  ``sonications[i]`` (entry ``i`` of the file's list, from 0);
- a bare ``<field>`` means ``treatment.<field>``: ``{"peak_c": 56}`` titrates every
  treatment sonication to 56 C.

Setting one of ``power_w``, ``absorbed_power_w``, ``peak_c`` replaces the other two in
the selected entries (it switches how their power is chosen). A selector that
matches no entry, and any other key, is rejected by name.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .acoustics import Transducer, transducer_from_spec
from .errors import FusplanInputError
from .textfile import parse_yaml_value, read_structured_file
from .tissue import Tissue, tissue_from_spec

STAGES = ("alignment", "verification", "treatment")
OFFSET_FRAMES = ("acpc", "ras")
POWER_KEYS = ("power_w", "absorbed_power_w", "peak_c")
SONICATION_KEYS = ("stage", *POWER_KEYS, "duration_s", "cooling_s", "repeat", "offset_mm", "offset_frame")
TOP_LEVEL_KEYS = ("name", "tissue", "transducer", "grid", "sonications", "thresholds_cem43", "thermometry")
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
BUNDLED_PROTOCOLS = ("clt", "vim")


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
    source: str | None = None
    spec_json: str = field(default="{}", repr=False)

    @property
    def spec(self) -> dict:
        """The raw protocol mapping (a fresh copy: editing it changes nothing)."""
        return json.loads(self.spec_json)

    def to_dict(self) -> dict:
        """The protocol as run: the raw mapping it was built from (as :attr:`spec`)."""
        return self.spec

    @property
    def total_time_s(self) -> float:
        """Sum of all sonication and cooling times in s."""
        return float(sum(s.duration_s + s.cooling_s for s in self.sonications))


def default_protocol_path(name: str = "clt") -> Path:
    """Path of a protocol bundled with fusplan (``"clt"`` or ``"vim"``, any case)."""
    name = str(name).lower()
    if name not in BUNDLED_PROTOCOLS:
        raise FusplanInputError(f"unknown bundled protocol {name!r}; choose one of {', '.join(BUNDLED_PROTOCOLS)}")
    return Path(str(resources.files("fusplan") / "protocols" / f"{name}.yaml"))


def load_protocol(path_or_mapping: str | os.PathLike | Mapping | Protocol) -> Protocol:
    """Load and validate a protocol.

    Parameters
    ----------
    path_or_mapping : str, path-like, mapping or Protocol
        A YAML (``.yaml``/``.yml``) or JSON (``.json``) file; the name of a bundled
        protocol (``"clt"``, ``"vim"``) when no such file exists; a mapping with the
        contract's keys; or a :class:`Protocol` (returned unchanged).

    Returns
    -------
    Protocol

    Raises
    ------
    FusplanInputError
        Unreadable file, unknown or missing keys, wrong types, or values outside
        their sanity range; the one-line message names the file and the key path.
    """
    if isinstance(path_or_mapping, Protocol):
        return path_or_mapping
    if isinstance(path_or_mapping, Mapping):
        return _build(path_or_mapping, source=None, label="protocol")
    if not isinstance(path_or_mapping, (str, os.PathLike)):
        raise FusplanInputError(
            f"protocol must be a file path or a mapping (got {type(path_or_mapping).__name__})"
        )
    path = Path(path_or_mapping)
    if str(path_or_mapping).lower() in BUNDLED_PROTOCOLS and not os.path.exists(path):
        path = default_protocol_path(str(path_or_mapping))
    elif not path.suffix and not os.path.exists(path):
        raise FusplanInputError(f"{path}: no such protocol file, nor a bundled protocol "
                                f"(bundled: {', '.join(BUNDLED_PROTOCOLS)})")
    raw = _read_file(path)
    return _build(raw, source=str(path), label=str(path_or_mapping))


def override_protocol(protocol: Protocol, overrides: Mapping[str, Any]) -> Protocol:
    """A new protocol with ``overrides`` applied (see the module docstring for keys).

    Examples
    --------
    >>> p = load_protocol("clt")                                # doctest: +SKIP
    >>> override_protocol(p, {"peak_c": 57, "transducer.skull_transmission": 0.3})  # doctest: +SKIP
    """
    spec = protocol.spec
    for key, value in overrides.items():
        _apply_override(spec, str(key), value)
    label = f"{protocol.source or 'protocol'} (with overrides)"
    return _build(spec, source=protocol.source, label=label)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"key=value"`` (command line) into a key and a YAML-parsed value."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise FusplanInputError(f"override {text!r} must look like key=value (e.g. treatment.peak_c=56)")
    return key.strip(), parse_yaml_value(value, label=f"override {key.strip()}")


# ----------------------------------------------------------------------------- reading


def _read_file(path: Path) -> Any:
    """Read a protocol file with the bounded YAML/JSON reader of :mod:`fusplan.textfile`."""
    return read_structured_file(path, what="protocol file")


# -------------------------------------------------------------------------- validation


class _Checker:
    """Builds one-line errors ``<label>: <key path> <problem>``."""

    def __init__(self, label: str):
        self.label = label

    def error(self, key: str, problem: str) -> FusplanInputError:
        return FusplanInputError(f"{self.label}: {key} {problem}")

    def mapping(self, value, key: str, allowed, required=()) -> Mapping:
        if not isinstance(value, Mapping):
            return self._raise(key, f"must be a mapping (got {_describe(value)})")
        for name in value:
            if name not in allowed:
                where = f"{key}." if key != "protocol" else ""
                raise FusplanInputError(
                    f"{self.label}: unknown key {where}{name} (allowed: {', '.join(allowed)})"
                )
        for name in required:
            if name not in value:
                where = f"{key}." if key != "protocol" else ""
                raise FusplanInputError(f"{self.label}: missing required key {where}{name}")
        return value

    def number(self, value, key: str, *, gt=None, ge=None, le=None, lt=None) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self._raise(key, f"must be a number (got {_describe(value)})")
        try:
            value = float(value)
        except OverflowError:
            self._raise(key, f"must be finite (got {_describe(value)})")
        if not math.isfinite(value):
            self._raise(key, f"must be finite (got {value})")
        for bound, ok, text in (
            (gt, lambda b: value > b, ">"),
            (ge, lambda b: value >= b, ">="),
            (le, lambda b: value <= b, "<="),
            (lt, lambda b: value < b, "<"),
        ):
            if bound is not None and not ok(bound):
                self._raise(key, f"must be {text} {bound:g} (got {value:g})")
        return value

    def plausible(self, value: float, key: str, range_key: str) -> float:
        """Refuse ``value`` outside ``PLAUSIBLE_RANGES[range_key]`` (inclusive), naming ``key``."""
        low, high, unit = PLAUSIBLE_RANGES[range_key]
        if not low <= value <= high:
            self._raise(key, f"must be between {low:g} and {high:g} {unit} to be plausible (got {value:g})")
        return value

    def integer(self, value, key: str, *, ge: int, le: int) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self._raise(key, f"must be an integer (got {_describe(value)})")
        if not ge <= value <= le:
            self._raise(key, f"must be between {ge} and {le} (got {value})")
        return int(value)

    def choice(self, value, key: str, choices) -> str:
        if not isinstance(value, str) or value not in choices:
            self._raise(key, f"must be one of {', '.join(choices)} (got {_describe(value)})")
        return value

    def vector(self, value, key: str, length: int, **bounds) -> tuple[float, ...]:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or len(value) != length:
            self._raise(key, f"must be a list of {length} numbers (got {_describe(value)})")
        return tuple(self.number(v, f"{key}[{i}]", **bounds) for i, v in enumerate(value))

    def _raise(self, key: str, problem: str):
        raise self.error(key, problem)


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int) and abs(value) >= 10**16:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return type(value).__name__


def _delegate(function, spec, key: str, label: str):
    """Call ``function(spec)``, prefixing its errors with ``label`` and ``key``."""
    try:
        return function(spec)
    except FusplanInputError as error:
        message = str(error)
        if not message.startswith(key):
            message = f"{key}: {message}"
        raise FusplanInputError(f"{label}: {message}") from None


def _plain(value):
    """Mappings -> dict, sequences -> list, numpy scalars -> Python numbers (JSON-able)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _build(raw: Any, source: str | None, label: str) -> Protocol:
    check = _Checker(label)
    raw = _plain(raw)
    if not isinstance(raw, Mapping):
        raise FusplanInputError(f"{label}: a protocol must be a mapping of keys (got {_describe(raw)})")
    check.mapping(raw, "protocol", TOP_LEVEL_KEYS, REQUIRED_TOP_LEVEL_KEYS)

    default_name = Path(source).stem if source else "protocol"
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        check._raise("name", f"must be a non-empty string (got {_describe(name)})")

    tissue_spec = raw.get("tissue", "brain")
    if tissue_spec is None or not isinstance(tissue_spec, (str, Mapping)):
        check._raise("tissue", f"must be a preset name or a mapping (got {_describe(tissue_spec)})")
    _check_section_ranges(check, tissue_spec, "tissue")
    tissue = _delegate(tissue_from_spec, tissue_spec, "tissue", label)

    transducer_spec = raw["transducer"]
    if not isinstance(transducer_spec, Mapping):
        check._raise("transducer", f"must be a mapping (got {_describe(transducer_spec)})")
    _check_section_ranges(check, transducer_spec, "transducer")
    transducer = _delegate(transducer_from_spec, transducer_spec, "transducer", label)

    spacing_mm, extent_mm = _grid(check, raw.get("grid", DEFAULT_GRID))
    baseline_c = float(tissue.baseline_temperature_c)
    gaussian = transducer.model == "gaussian"
    sonications = _sonications(check, raw["sonications"], baseline_c, gaussian, extent_mm)
    thresholds = _thresholds(check, raw.get("thresholds_cem43", list(DEFAULT_THRESHOLDS_CEM43)))
    thermometry = _thermometry(check, raw.get("thermometry"))
    return Protocol(
        name=name.strip(),
        tissue=tissue,
        transducer=transducer,
        spacing_mm=spacing_mm,
        extent_mm=extent_mm,
        sonications=sonications,
        thresholds_cem43=thresholds,
        thermometry=thermometry,
        source=source,
        spec_json=json.dumps(raw, sort_keys=True, default=str),
    )


def _check_section_ranges(check: _Checker, spec, section: str) -> None:
    """Plausible-range check of the numbers in a ``tissue`` or ``transducer`` mapping.

    Only real numbers (and lists of them) and the type of the ``preset`` / ``model`` names
    are checked here; other types, signs and unknown keys are left to the section's own
    validation, which names them.
    """
    if not isinstance(spec, Mapping):
        return
    for name, value in spec.items():
        key = f"{section}.{name}"
        if key in ("tissue.preset", "transducer.model") and not isinstance(value, str):
            check._raise(key, f"must be a name (got {_describe(value)})")
        if key not in PLAUSIBLE_RANGES:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(values):
            if isinstance(item, bool) or not isinstance(item, numbers.Real):
                continue
            item_key = f"{key}[{i}]" if isinstance(value, (list, tuple)) else key
            check.plausible(check.number(item, item_key), item_key, key)


def _grid(check: _Checker, grid) -> tuple[float, float]:
    grid = check.mapping(grid, "grid", ("spacing_mm", "extent_mm"))
    grid = {**DEFAULT_GRID, **grid}
    low, high = SPACING_RANGE_MM
    spacing_mm = check.number(grid["spacing_mm"], "grid.spacing_mm", gt=low, le=high)
    check.plausible(spacing_mm, "grid.spacing_mm", "grid.spacing_mm")
    low, high = EXTENT_RANGE_MM
    extent_mm = check.number(grid["extent_mm"], "grid.extent_mm", ge=low, le=high)
    n = 2 * int(round(extent_mm / (2 * spacing_mm))) + 1
    if n < 11:
        check._raise("grid.extent_mm", f"must span at least 11 voxels of grid.spacing_mm (got {n})")
    if n**3 > MAX_GRID_VOXELS:
        raise check.error(
            "grid", f"has {n}^3 = {n**3:,} voxels, more than the {MAX_GRID_VOXELS:,} allowed "
            "(increase spacing_mm or reduce extent_mm)"
        )
    return spacing_mm, extent_mm


def _sonications(check: _Checker, entries, baseline_c: float, gaussian: bool, extent_mm: float):
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, (list, tuple)) or not entries:
        check._raise("sonications", f"must be a non-empty list (got {_describe(entries)})")
    expanded = []
    max_offset_mm = min(MAX_OFFSET_MM, extent_mm / 2 - FOCUS_MARGIN_MM)
    for i, entry in enumerate(entries):
        key = f"sonications[{i}]"
        entry = check.mapping(entry, key, SONICATION_KEYS, ("stage", "duration_s"))
        stage = check.choice(entry["stage"], f"{key}.stage", STAGES)
        given = [k for k in POWER_KEYS if k in entry]
        if len(given) != 1:
            problem = "gives none" if not given else f"gives {' and '.join(given)}"
            raise check.error(key, f"must give exactly one of power_w, absorbed_power_w, peak_c ({problem})")
        power_key = given[0]
        if gaussian and power_key == "power_w":
            raise check.error(
                f"{key}.power_w",
                "is not allowed with a gaussian transducer: give absorbed_power_w or peak_c",
            )
        if power_key == "power_w":
            power = check.number(entry[power_key], f"{key}.power_w", gt=0, le=MAX_POWER_W)
        elif power_key == "absorbed_power_w":
            power = check.number(entry[power_key], f"{key}.absorbed_power_w", gt=0, le=MAX_ABSORBED_POWER_W)
        else:
            power = check.number(entry[power_key], f"{key}.peak_c", le=MAX_PEAK_C)
            if power <= baseline_c:
                check._raise(f"{key}.peak_c", f"must be > {baseline_c:g} C, the baseline temperature (got {power:g})")
        duration_s = check.number(entry["duration_s"], f"{key}.duration_s", gt=0, le=MAX_DURATION_S)
        check.plausible(duration_s, f"{key}.duration_s", "sonications.duration_s")
        cooling_s = check.number(entry.get("cooling_s", 0), f"{key}.cooling_s", ge=0, le=MAX_COOLING_S)
        repeat = check.integer(entry.get("repeat", 1), f"{key}.repeat", ge=1, le=MAX_REPEAT)
        offset_mm = None
        if entry.get("offset_mm") is not None:
            offset_mm = check.vector(entry["offset_mm"], f"{key}.offset_mm", 3)
            norm = math.sqrt(sum(v * v for v in offset_mm))
            if norm > max_offset_mm:
                check._raise(
                    f"{key}.offset_mm",
                    f"moves the focus {norm:.3g} mm from the target, more than the {max_offset_mm:g} mm allowed "
                    f"(steering range {MAX_OFFSET_MM:g} mm, {FOCUS_MARGIN_MM:g} mm inside the grid)",
                )
        offset_frame = check.choice(entry.get("offset_frame", "acpc"), f"{key}.offset_frame", OFFSET_FRAMES)
        for _ in range(repeat):
            expanded.append(
                Sonication(
                    index=len(expanded) + 1,
                    stage=stage,
                    duration_s=duration_s,
                    cooling_s=cooling_s,
                    offset_mm=offset_mm,
                    offset_frame=offset_frame,
                    **{power_key: power},
                )
            )
    if len(expanded) > MAX_SONICATIONS:
        check._raise("sonications", f"expand to {len(expanded)} sonications, more than the {MAX_SONICATIONS} allowed")
    return tuple(expanded)


def _thresholds(check: _Checker, value) -> tuple[float, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        check._raise("thresholds_cem43", f"must be a non-empty list of numbers (got {_describe(value)})")
    if len(value) > MAX_THRESHOLDS:
        check._raise("thresholds_cem43", f"has {len(value)} entries, more than the {MAX_THRESHOLDS} allowed")
    thresholds = tuple(
        check.plausible(check.number(v, f"thresholds_cem43[{i}]", gt=0, le=1e6), f"thresholds_cem43[{i}]",
                        "thresholds_cem43")
        for i, v in enumerate(value)
    )
    if len(set(thresholds)) != len(thresholds):
        check._raise("thresholds_cem43", f"has repeated values (got {list(thresholds)})")
    return thresholds


def _thermometry(check: _Checker, value) -> Thermometry | None:
    if value is None:
        return None
    value = check.mapping(value, "thermometry", ("voxel_mm", "frame_s"), ("voxel_mm", "frame_s"))
    voxel_mm = check.vector(value["voxel_mm"], "thermometry.voxel_mm", 3, gt=0, le=MAX_THERMOMETRY_VOXEL_MM)
    frame_s = check.number(value["frame_s"], "thermometry.frame_s", gt=0, le=MAX_FRAME_S)
    for i, edge_mm in enumerate(voxel_mm):
        check.plausible(edge_mm, f"thermometry.voxel_mm[{i}]", "thermometry.voxel_mm")
    check.plausible(frame_s, "thermometry.frame_s", "thermometry.frame_s")
    return Thermometry(voxel_mm=voxel_mm, frame_s=frame_s)


# --------------------------------------------------------------------------- overrides

_SELECTOR = re.compile(r"^(sonications|alignment|verification|treatment|sonications\[(\d+)\])\.(\w+)$")
_SECTION_KEYS = {
    "grid": ("spacing_mm", "extent_mm"),
    "thermometry": ("voxel_mm", "frame_s"),
}
_SONICATION_FIELDS = tuple(k for k in SONICATION_KEYS if k != "stage")


def _apply_override(spec: dict, key: str, value: Any) -> None:
    if key in _SONICATION_FIELDS:
        key = f"treatment.{key}"
    if key in TOP_LEVEL_KEYS:
        spec[key] = value
        return
    section, _, sub = key.partition(".")
    if section in ("tissue", "transducer") and sub and "." not in sub:
        current = spec.get(section, "brain" if section == "tissue" else {})
        if isinstance(current, str):
            current = {"preset": current}
        elif not isinstance(current, Mapping):
            current = {}
        spec[section] = {**current, sub: value}
        return
    if section in _SECTION_KEYS and sub in _SECTION_KEYS[section]:
        current = spec.get(section)
        spec[section] = {**(current if isinstance(current, Mapping) else {}), sub: value}
        return
    match = _SELECTOR.match(key)
    if match is None or match.group(3) not in _SONICATION_FIELDS:
        raise FusplanInputError(
            f"override {key!r} is not a known key (use e.g. peak_c, treatment.duration_s, sonications[0].power_w, "
            "transducer.skull_transmission, tissue.perfusion_ml_min_kg, grid.spacing_mm)"
        )
    selector, index, name = match.groups()
    entries = spec.get("sonications")
    if not isinstance(entries, list):
        raise FusplanInputError(f"override {key!r}: the protocol has no sonications list")
    if index is not None:
        chosen = [int(index)] if int(index) < len(entries) else []
    elif selector == "sonications":
        chosen = list(range(len(entries)))
    else:
        chosen = [i for i, e in enumerate(entries) if isinstance(e, Mapping) and e.get("stage") == selector]
    if not chosen:
        raise FusplanInputError(f"override {key!r}: the protocol has no such sonication")
    for i in chosen:
        entry = dict(entries[i])
        if name in POWER_KEYS:
            for other in POWER_KEYS:
                entry.pop(other, None)
        entry[name] = value
        entries[i] = entry
