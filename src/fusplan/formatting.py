"""How numbers are written for people: one rule per quantity, used by every text output.

``summary.md``, ``demo.md``, the teaching text, the figures' annotations, the batch
summary and the napari plugin's tables all format through this module, so one
quantity reads the same everywhere (the same decimals on both sides of a plan, in
the report and in the plugin). JSON output is not formatted here: it keeps full
numbers (:func:`fusplan.report.dumps_json`).

Each function takes a number (or None, written :data:`MISSING`) and returns text
without the unit; :func:`value` picks the rule from a JSON key's unit suffix
(``peak_temperature_c`` -> :func:`temperature`) and :func:`heading` writes the key as a
column heading with its unit (``"peak temperature (°C)"``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

#: Written for a missing value (None, NaN).
MISSING = "-"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fixed(value, decimals: int) -> str:
    """``value`` with ``decimals`` decimals (``-0.0`` written ``0.0``)."""
    if _missing(value):
        return MISSING
    text = f"{float(value):.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def temperature(value_c) -> str:
    """A temperature or temperature rise in °C: one decimal (``52.3``)."""
    return fixed(value_c, 1)


def power(value_w) -> str:
    """A power in W: one decimal (``652.3``, ``0.4``); below 0.05 W three significant digits."""
    if _missing(value_w):
        return MISSING
    return f"{float(value_w):.3g}" if 0 < abs(float(value_w)) < 0.05 else fixed(value_w, 1)


def absorbed_power(value_w) -> str:
    """Power absorbed in the tissue (a few W): two decimals (``0.81``, ``3.15``)."""
    return fixed(value_w, 2)


def energy(value_j) -> str:
    """An energy in J: whole joules (``6523``); below 10 J one decimal."""
    if _missing(value_j):
        return MISSING
    return fixed(value_j, 0 if abs(float(value_j)) >= 10 else 1)


def duration(value_s) -> str:
    """A time or duration in s: one decimal (``12.5``)."""
    return fixed(value_s, 1)


def length(value_mm) -> str:
    """A length in mm (lesion extent, diameter, distance): two decimals (``2.29``)."""
    return fixed(value_mm, 2)


def position(value_mm) -> str:
    """A coordinate in mm: one decimal (``-12.4``)."""
    return fixed(value_mm, 1)


def volume(value_mm3) -> str:
    """A volume in mm³: one decimal (``6.3``)."""
    return fixed(value_mm3, 1)


def dose(value_cem43) -> str:
    """A thermal dose in CEM43 min: three significant digits, scientific below 0.01 (``1.2e-05``, ``369``)."""
    if _missing(value_cem43):
        return MISSING
    value = float(value_cem43)
    return f"{value:.1e}" if 0 < abs(value) < 0.01 else f"{value:.3g}"


def threshold(value_cem43) -> str:
    """A dose threshold in CEM43 min, as few digits as it has (``240``, ``17.5``)."""
    return MISSING if _missing(value_cem43) else f"{float(value_cem43):g}"


def percent(fraction, decimals: int = 0) -> str:
    """A fraction (0..1) as a percentage without the sign (``0.734`` -> ``73``)."""
    return MISSING if _missing(fraction) else fixed(100.0 * float(fraction), decimals)


def probability(value) -> str:
    """A probability (0..1): two decimals (``0.25``)."""
    return fixed(value, 2)


def ratio(value) -> str:
    """A dimensionless factor (efficiency, transmission): two decimals (``0.85``)."""
    return fixed(value, 2)


def fraction(value) -> str:
    """A share of energy or power (0..1): three decimals (``0.089``)."""
    return fixed(value, 3)


def angle(value_deg) -> str:
    """An angle in degrees: one decimal (``8.9``)."""
    return fixed(value_deg, 1)


def vector(values: Iterable | None, decimals: int = 1) -> str:
    """A point in mm as ``(x, y, z)`` with ``decimals`` decimals."""
    if values is None:
        return MISSING
    return "(" + ", ".join(fixed(v, decimals) for v in values) + ")"


#: JSON key suffix -> (formatter, unit written in headings), longest suffix first.
_BY_SUFFIX = (
    ("_cem43", dose, "CEM43 min"), ("_mm3", volume, "mm³"), ("_mm", length, "mm"), ("_c", temperature, "°C"),
    ("_w", power, "W"), ("_j", energy, "J"), ("_s", duration, "s"), ("_deg", angle, "deg"),
)
#: Keys whose suffix would mislead: rules of their own.
_BY_KEY = {"threshold_cem43": (threshold, "CEM43 min"), "absorbed_power_w": (absorbed_power, "W"), "fraction_of_lesion": (percent, "%"),
           "fraction_of_nucleus": (percent, "%"), "index": (None, ""),
           "target_coverage_probability": (probability, "")}
#: Words of headings that are abbreviations.
_UPPER = {"lr", "ap", "si", "ras", "acpc", "ct", "sdr", "mrt"}


def _rule(key: str):
    if key in _BY_KEY:
        return _BY_KEY[key]
    for suffix, formatter, unit in _BY_SUFFIX:
        if key.endswith(suffix):
            return formatter, unit
    return None, ""


def value(key: str, number) -> str:
    """``number`` written by the rule of JSON key ``key`` (its unit suffix); text and ints as they are."""
    if _missing(number):
        return MISSING
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return str(number)
    formatter = _rule(key)[0]
    if formatter is None:
        return str(number) if isinstance(number, int) else f"{number:.4g}"
    return formatter(number)


def heading(key: str) -> str:
    """A JSON key as a column heading with its unit: ``peak_temperature_c`` -> ``peak temperature (°C)``."""
    unit = _rule(key)[1]
    # the unit suffix goes (it is written in brackets), whichever rule formats the number
    stem = next((key[: -len(suffix)] for suffix, _, _ in _BY_SUFFIX if key.endswith(suffix)), key)
    words = [w.upper() if w in _UPPER else w for w in stem.split("_")]
    text = " ".join(words)
    return f"{text} ({unit})" if unit else text
