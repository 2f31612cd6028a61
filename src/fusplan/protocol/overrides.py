"""Protocol overrides (batch sweeps and ``--set key=value``).

Grammar
-------
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

import re
from typing import Any
from collections.abc import Mapping

from ..errors import FusplanInputError
from ..textfile import parse_yaml_value
from .limits import POWER_KEYS, SONICATION_KEYS, TOP_LEVEL_KEYS
from .model import Protocol
from .validate import build_protocol


def override_protocol(protocol: Protocol, overrides: Mapping[str, Any]) -> Protocol:
    """A new protocol with ``overrides`` applied (see the module docstring for keys).

    Examples
    --------
    >>> from fusplan.protocol import load_protocol
    >>> p = load_protocol("clt")                                # doctest: +SKIP
    >>> override_protocol(p, {"peak_c": 57, "transducer.skull_transmission": 0.3})  # doctest: +SKIP
    """
    spec = protocol.spec
    problems = []
    for key, value in overrides.items():  # every bad key is named, not only the first
        try:
            _apply_override(spec, str(key), value)
        except FusplanInputError as error:
            problems.append(str(error))
    if problems:
        unknown = [p for p in problems if p.endswith(_UNKNOWN)]
        raise FusplanInputError("; ".join(problems) + (f" ({_KNOWN_KEYS})" if unknown else ""))
    label = f"{protocol.source or 'protocol'} (with overrides)"
    return build_protocol(spec, source=protocol.source, label=label)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"key=value"`` (command line) into a key and a YAML-parsed value."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise FusplanInputError(f"override {text[:80]!r} must look like key=value (e.g. treatment.peak_c=56)")
    parsed = parse_yaml_value(value, label=f"override {key.strip()}")
    _check_plain(parsed, f"override {key.strip()}")
    return key.strip(), parsed


def _check_plain(value: Any, label: str) -> None:
    """Refuse values a protocol file cannot hold (``!!binary`` bytes, dates, sets)."""
    if isinstance(value, Mapping):
        for item in value.values():
            _check_plain(item, label)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, label)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise FusplanInputError(f"{label}: a {type(value).__name__} value is not a number, text or list")



_SELECTOR = re.compile(r"^(sonications|alignment|verification|treatment|sonications\[(\d+)\])\.(\w+)$")
_SECTION_KEYS = {
    "grid": ("spacing_mm", "extent_mm"),
    "thermometry": ("voxel_mm", "frame_s"),
}
_SONICATION_FIELDS = tuple(k for k in SONICATION_KEYS if k != "stage")
_UNKNOWN = " is not a known key"
_KNOWN_KEYS = ("use e.g. peak_c, treatment.duration_s, sonications[0].power_w, transducer.skull_transmission, "
               "tissue.perfusion_ml_min_kg, grid.spacing_mm")


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
        raise FusplanInputError(f"override {key!r}{_UNKNOWN}")
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
