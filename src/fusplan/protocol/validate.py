"""Validate a raw protocol mapping and build the :class:`~fusplan.protocol.model.Protocol`.

Every key is checked for type, sign, sanity bound and plausible range (see
:mod:`fusplan.protocol.limits`) before anything is built; the first bad one raises a
one-line :class:`~fusplan.errors.FusplanInputError` naming the file and the key path.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from ..acoustics import transducer_from_spec
from ..errors import FusplanInputError
from ..tissue import tissue_from_spec
from .checker import Checker, describe
from .limits import (
    DEFAULT_GRID,
    DEFAULT_THRESHOLDS_CEM43,
    EXTENT_RANGE_MM,
    FOCUS_MARGIN_MM,
    FOCUS_PRIORS,
    MAX_FOCUS_SPREAD,
    MAX_ABSORBED_POWER_W,
    MAX_COOLING_S,
    MAX_DISTINCT_FOCI,
    MAX_DURATION_S,
    MAX_FRAME_S,
    MAX_GRID_VOXELS,
    MAX_OFFSET_MM,
    MAX_PEAK_C,
    MAX_POWER_W,
    MAX_REPEAT,
    MAX_SONICATIONS,
    MAX_THERMOMETRY_VOXEL_MM,
    MAX_THRESHOLDS,
    OFFSET_FRAMES,
    PLAUSIBLE_RANGES,
    POWER_KEYS,
    REQUIRED_TOP_LEVEL_KEYS,
    SONICATION_KEYS,
    SPACING_RANGE_MM,
    STAGES,
    TOP_LEVEL_KEYS,
)
from .model import FocusPrior, Protocol, Sonication, Thermometry, named_focus_prior


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


def build_protocol(raw: Any, source: str | None, label: str) -> Protocol:
    """Validate ``raw`` (a mapping read from ``source``) and build the protocol; errors start with ``label``."""
    check = Checker(label)
    raw = _plain(raw)
    if not isinstance(raw, Mapping):
        raise FusplanInputError(f"{label}: a protocol must be a mapping of keys (got {describe(raw)})")
    check.mapping(raw, "protocol", TOP_LEVEL_KEYS, REQUIRED_TOP_LEVEL_KEYS)

    default_name = Path(source).stem if source else "protocol"
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        check.fail("name", f"must be a non-empty string (got {describe(name)})")

    tissue_spec = raw.get("tissue", "brain")
    if tissue_spec is None or not isinstance(tissue_spec, (str, Mapping)):
        check.fail("tissue", f"must be a preset name or a mapping (got {describe(tissue_spec)})")
    _check_section_ranges(check, tissue_spec, "tissue")
    tissue = _delegate(tissue_from_spec, tissue_spec, "tissue", label)

    transducer_spec = raw["transducer"]
    if not isinstance(transducer_spec, Mapping):
        check.fail("transducer", f"must be a mapping (got {describe(transducer_spec)})")
    _check_section_ranges(check, transducer_spec, "transducer")
    transducer = _delegate(transducer_from_spec, transducer_spec, "transducer", label)

    spacing_mm, extent_mm = _grid(check, raw.get("grid", DEFAULT_GRID))
    baseline_c = float(tissue.baseline_temperature_c)
    sonications = _sonications(check, raw["sonications"], baseline_c, transducer.kind, extent_mm)
    thresholds = _thresholds(check, raw.get("thresholds_cem43", list(DEFAULT_THRESHOLDS_CEM43)))
    thermometry = _thermometry(check, raw.get("thermometry"))
    focus_prior = _focus_prior(check, raw.get("focus_prior", "auto"))
    return Protocol(
        name=name.strip(),
        tissue=tissue,
        transducer=transducer,
        spacing_mm=spacing_mm,
        extent_mm=extent_mm,
        sonications=sonications,
        thresholds_cem43=thresholds,
        thermometry=thermometry,
        focus_prior=focus_prior,
        source=source,
        spec_json=json.dumps(raw, sort_keys=True, default=str),
    )


def _check_section_ranges(check: Checker, spec, section: str) -> None:
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
            check.fail(key, f"must be a name (got {describe(value)})")
        if key not in PLAUSIBLE_RANGES:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(values):
            if isinstance(item, bool) or not isinstance(item, numbers.Real):
                continue
            item_key = f"{key}[{i}]" if isinstance(value, (list, tuple)) else key
            check.plausible(check.number(item, item_key), item_key, key)


def _grid(check: Checker, grid) -> tuple[float, float]:
    grid = check.mapping(grid, "grid", ("spacing_mm", "extent_mm"))
    grid = {**DEFAULT_GRID, **grid}
    low, high = SPACING_RANGE_MM
    spacing_mm = check.number(grid["spacing_mm"], "grid.spacing_mm", gt=low, le=high)
    check.plausible(spacing_mm, "grid.spacing_mm", "grid.spacing_mm")
    low, high = EXTENT_RANGE_MM
    extent_mm = check.number(grid["extent_mm"], "grid.extent_mm", ge=low, le=high)
    n = 2 * int(round(extent_mm / (2 * spacing_mm))) + 1
    if n < 11:
        check.fail("grid.extent_mm", f"must span at least 11 voxels of grid.spacing_mm (got {n})")
    if n**3 > MAX_GRID_VOXELS:
        raise check.error(
            "grid", f"has {n}^3 = {n**3:,} voxels, more than the {MAX_GRID_VOXELS:,} allowed "
            "(increase spacing_mm or reduce extent_mm)"
        )
    return spacing_mm, extent_mm


def _sonications(check: Checker, entries, baseline_c: float, kind, extent_mm: float):
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, (list, tuple)) or not entries:
        check.fail("sonications", f"must be a non-empty list (got {describe(entries)})")
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
        if not kind.radiates and power_key == "power_w":  # a heat-source model has no emitted power
            raise check.error(
                f"{key}.power_w",
                f"is not allowed with a {kind.name} transducer: give absorbed_power_w or peak_c",
            )
        if power_key == "power_w":
            power = check.number(entry[power_key], f"{key}.power_w", gt=0, le=MAX_POWER_W)
        elif power_key == "absorbed_power_w":
            power = check.number(entry[power_key], f"{key}.absorbed_power_w", gt=0, le=MAX_ABSORBED_POWER_W)
        else:
            power = check.number(entry[power_key], f"{key}.peak_c", le=MAX_PEAK_C)
            if power <= baseline_c:
                check.fail(f"{key}.peak_c", f"must be > {baseline_c:g} C, the baseline temperature (got {power:g})")
        duration_s = check.number(entry["duration_s"], f"{key}.duration_s", gt=0, le=MAX_DURATION_S)
        check.plausible(duration_s, f"{key}.duration_s", "sonications.duration_s")
        cooling_s = check.number(entry.get("cooling_s", 0), f"{key}.cooling_s", ge=0, le=MAX_COOLING_S)
        repeat = check.integer(entry.get("repeat", 1), f"{key}.repeat", ge=1, le=MAX_REPEAT)
        offset_mm = None
        if entry.get("offset_mm") is not None:
            offset_mm = check.vector(entry["offset_mm"], f"{key}.offset_mm", 3)
            norm = math.sqrt(sum(v * v for v in offset_mm))
            if norm > max_offset_mm:
                check.fail(
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
        check.fail("sonications", f"expand to {len(expanded)} sonications, more than the {MAX_SONICATIONS} allowed")
    foci = {(s.offset_mm, s.offset_frame if s.offset_mm is not None else None) for s in expanded}
    if len(foci) > MAX_DISTINCT_FOCI:
        check.fail("sonications[].offset_mm", f"give {len(foci)} distinct foci, more than the {MAX_DISTINCT_FOCI} "
                                               "allowed (each costs one acoustic field and one thermal table)")
    return tuple(expanded)


def _thresholds(check: Checker, value) -> tuple[float, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        check.fail("thresholds_cem43", f"must be a non-empty list of numbers (got {describe(value)})")
    if len(value) > MAX_THRESHOLDS:
        check.fail("thresholds_cem43", f"has {len(value)} entries, more than the {MAX_THRESHOLDS} allowed")
    thresholds = tuple(
        check.plausible(check.number(v, f"thresholds_cem43[{i}]", gt=0, le=1e6), f"thresholds_cem43[{i}]",
                        "thresholds_cem43")
        for i, v in enumerate(value)
    )
    if len(set(thresholds)) != len(thresholds):
        check.fail("thresholds_cem43", f"has repeated values (got {list(thresholds)})")
    return thresholds


def _thermometry(check: Checker, value) -> Thermometry | None:
    if value is None:
        return None
    value = check.mapping(value, "thermometry", ("voxel_mm", "frame_s"), ("voxel_mm", "frame_s"))
    voxel_mm = check.vector(value["voxel_mm"], "thermometry.voxel_mm", 3, gt=0, le=MAX_THERMOMETRY_VOXEL_MM)
    frame_s = check.number(value["frame_s"], "thermometry.frame_s", gt=0, le=MAX_FRAME_S)
    for i, edge_mm in enumerate(voxel_mm):
        check.plausible(edge_mm, f"thermometry.voxel_mm[{i}]", "thermometry.voxel_mm")
    check.plausible(frame_s, "thermometry.frame_s", "thermometry.frame_s")
    return Thermometry(voxel_mm=voxel_mm, frame_s=frame_s)



def _focus_prior(check: Checker, value) -> FocusPrior | str:
    """``auto`` | ``none`` | a named prior | ``{spread: [lr, ap, si], source: text}``."""
    names = ("auto", "none", *FOCUS_PRIORS)
    if value is None:
        return "none"
    if isinstance(value, str):
        name = check.choice(value, "focus_prior", names)
        return name if name in ("auto", "none") else named_focus_prior(name)
    value = check.mapping(value, "focus_prior", ("spread", "source"), ("spread",))
    spread = check.vector(value["spread"], "focus_prior.spread", 3, ge=1, le=MAX_FOCUS_SPREAD)
    source = value.get("source", "protocol")
    if not isinstance(source, str) or not source.strip():
        check.fail("focus_prior.source", f"must be a non-empty string (got {describe(source)})")
    return FocusPrior(tuple(float(v) for v in spread), source.strip())
