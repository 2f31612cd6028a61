"""Sonication protocols: load, validate and override.

A protocol file (YAML or JSON, see the contract) names the tissue, the transducer,
the planning grid, the list of sonications, the CEM43 thresholds to report and an
optional MR thermometry model. :func:`load_protocol` validates every key and turns
the file into a frozen, hashable and picklable :class:`Protocol` (batch runs send it
to worker processes). Bad input raises :class:`~fusplan.errors.FusplanInputError`
with a one-line message naming the file and the key path, for instance
``clt.yaml: sonication entry 3: duration_s must be > 0 (got 0)``. Messages count the
entries of the file's ``sonications`` list from 1 (the napari editor's row numbers); the
``index`` of a :class:`Sonication` counts the expanded list (``repeat``) from 1, as the
report does. Override keys (:func:`override_protocol`) keep JSON paths counted from 0:
``sonications[2].peak_c`` is entry 3.

The package keeps one job per module: :mod:`.limits` (keys, defaults, sanity bounds and
plausible ranges), :mod:`.model` (the frozen dataclasses), :mod:`.checker` (one-line
key-path errors), :mod:`.validate` (mapping -> :class:`Protocol`) and :mod:`.overrides`
(the override grammar of batch sweeps, see :func:`override_protocol`).
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from collections.abc import Mapping

from ..errors import FusplanInputError
from ..textfile import read_structured_file
from .limits import *  # noqa: F401,F403  (limits.__all__: the keys, bounds and ranges are this module's API)
from .limits import BUNDLED_PROTOCOLS
from .model import FocusPrior, Protocol, Sonication, Thermometry  # noqa: F401 - re-exported API
from .overrides import override_protocol, parse_override  # noqa: F401 - re-exported API
from .validate import build_protocol


def default_protocol_path(name: str = "clt") -> Path:
    """Path of a protocol bundled with fusplan (``"clt"`` or ``"vim"``, any case)."""
    name = str(name).lower()
    if name not in BUNDLED_PROTOCOLS:
        raise FusplanInputError(f"unknown bundled protocol {name!r}; choose one of {', '.join(BUNDLED_PROTOCOLS)}")
    return Path(str(resources.files("fusplan") / "protocols" / f"{name}.yaml"))


def load_protocol(path_or_mapping: str | os.PathLike | Mapping | Protocol, *, source: str | None = None) -> Protocol:
    """Load and validate a protocol.

    Parameters
    ----------
    path_or_mapping : str, path-like, mapping or Protocol
        A YAML (``.yaml``/``.yml``) or JSON (``.json``) file; the name of a bundled
        protocol (``"clt"``, ``"vim"``) when no such file exists; a mapping with the
        contract's keys; or a :class:`Protocol` (returned unchanged).
    source : str, optional
        Where a mapping came from (recorded as :attr:`Protocol.source`, e.g. an edited
        file); a file's source is its resolved absolute path.

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
        return build_protocol(path_or_mapping, source=source, label="protocol")
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
    raw = read_structured_file(path, what="protocol file")
    return build_protocol(raw, source=str(path.resolve()), label=str(path_or_mapping))

