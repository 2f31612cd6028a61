"""One-line input errors ``<label>: <key path> <problem>`` for nested mappings.

:class:`Checker` checks types, signs, bounds and plausible ranges of values read from a
file and names the key path of the first bad one; the protocol and the thermometry
sidecar readers (:mod:`fusplan.measured`) share it.

Entries of a list are counted from 1 in messages, as people count them and as the napari
editor numbers its rows: the key path ``sonications[2].duration_s`` is shown as
``sonication entry 3: duration_s`` (:func:`shown`).
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping

from ..errors import FusplanInputError
from .limits import PLAUSIBLE_RANGES


_ENTRY = re.compile(r"sonications\[(\d+)\](\.)?")


def shown(key: str) -> str:
    """A key path as messages show it: ``sonications[2].peak_c`` -> ``sonication entry 3: peak_c``."""
    return _ENTRY.sub(lambda m: f"sonication entry {int(m.group(1)) + 1}" + (": " if m.group(2) else ""), key)


class Checker:
    """Builds one-line errors ``<label>: <key path> <problem>`` (list entries counted from 1, :func:`shown`)."""

    def __init__(self, label: str):
        self.label = label

    def error(self, key: str, problem: str) -> FusplanInputError:
        return FusplanInputError(f"{self.label}: {shown(key)} {problem}")

    def mapping(self, value, key: str, allowed, required=()) -> Mapping:
        if not isinstance(value, Mapping):
            return self.fail(key, f"must be a mapping (got {describe(value)})")
        for name in value:
            if name not in allowed:
                where = f"{key}." if key != "protocol" else ""
                raise FusplanInputError(
                    f"{self.label}: unknown key {shown(where + str(name))} (allowed: {', '.join(allowed)})"
                )
        for name in required:
            if name not in value:
                where = f"{key}." if key != "protocol" else ""
                raise FusplanInputError(f"{self.label}: missing required key {shown(where + str(name))}")
        return value

    def number(self, value, key: str, *, gt=None, ge=None, le=None, lt=None) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self.fail(key, f"must be a number (got {describe(value)})")
        try:
            value = float(value)
        except OverflowError:
            self.fail(key, f"must be finite (got {describe(value)})")
        if not math.isfinite(value):
            self.fail(key, f"must be finite (got {value})")
        for bound, ok, text in (
            (gt, lambda b: value > b, ">"),
            (ge, lambda b: value >= b, ">="),
            (le, lambda b: value <= b, "<="),
            (lt, lambda b: value < b, "<"),
        ):
            if bound is not None and not ok(bound):
                self.fail(key, f"must be {text} {bound:g} (got {value:g})")
        return value

    def plausible(self, value: float, key: str, range_key: str) -> float:
        """Refuse ``value`` outside ``PLAUSIBLE_RANGES[range_key]`` (inclusive), naming ``key``."""
        low, high, unit = PLAUSIBLE_RANGES[range_key]
        if not low <= value <= high:
            self.fail(key, f"must be between {low:g} and {high:g} {unit} to be plausible (got {value:g})")
        return value

    def integer(self, value, key: str, *, ge: int, le: int) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self.fail(key, f"must be an integer (got {describe(value)})")
        if not ge <= value <= le:
            self.fail(key, f"must be between {ge} and {le} (got {value})")
        return int(value)

    def choice(self, value, key: str, choices) -> str:
        if not isinstance(value, str) or value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)} (got {describe(value)})")
        return value

    def vector(self, value, key: str, length: int, **bounds) -> tuple[float, ...]:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or len(value) != length:
            self.fail(key, f"must be a list of {length} numbers (got {describe(value)})")
        return tuple(self.number(v, f"{key}[{i}]", **bounds) for i, v in enumerate(value))

    def fail(self, key: str, problem: str):
        """Raise the one-line error for ``key``."""
        raise self.error(key, problem)


def describe(value) -> str:
    """A short description of ``value`` for an error message."""
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
