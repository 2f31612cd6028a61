"""The words every layer shares: sides, stages, skull sources, atlases, default target, presets.

A bottom module (it imports only :mod:`fusplan.errors`), so the command line, the
batch runner and the plugin name these without importing a numerical module, and
every layer spells them the same way. The modules that give the words a meaning
check them against these tuples (a test keeps :data:`ATLASES` equal to the atlas
folders and :data:`REGISTRATION_PRESETS` equal to the registration settings).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import FusplanInputError

#: The two sides a plan can have, in the order every result lists them.
SIDES = ("left", "right")
#: What a front end offers for "which side" (``--side``, the plugin's side box) and the sides each means.
SIDE_CHOICES = {"left": ("left",), "right": ("right",), "both": SIDES}
#: The one default side of ``--side`` (target, simulate, plan, batch, demo).
DEFAULT_SIDE = "left"

#: Stages of a staged procedure, in the order they are run.
STAGES = ("alignment", "verification", "treatment")

#: Where the skull in front of the array comes from: none, the population template, the patient's CT.
SKULL_SOURCES = ("none", "population", "ct")

#: Atlases bundled with fusplan (:mod:`fusplan.atlas`).
ATLASES = ("morel", "najdenovska")
#: The atlas registered when none is named.
DEFAULT_ATLAS = "morel"
#: The posterior central lateral nucleus: the rule-based target (see :mod:`fusplan.targeting`).
CLP_TARGET = "CLp"
#: The target placed when none is named.
DEFAULT_TARGET = CLP_TARGET

#: Registration presets (:data:`fusplan.registration.settings.SETTINGS`), quickest last.
REGISTRATION_PRESETS = ("standard", "fast", "affine")
#: The preset used when none is named.
DEFAULT_REGISTRATION_PRESET = "standard"

#: The atlas registration written by ``target --out`` and ``plan --out`` (reuse with ``--registration``).
REGISTRATION_FILE = "registration.npz"
#: The CT -> MR registration written beside it (reuse with ``--ct-registration``).
CT_REGISTRATION_FILE = "ct_registration.npz"

_SIDE_SEPARATORS = re.compile(r"[;+,\s]+")


def parse_sides(value: str | Iterable[str], what: str = "side") -> tuple[str, ...]:
    """The sides a request names, in :data:`SIDES` order, each once.

    The one rule for every front end and the library: case and surrounding
    spaces are ignored; a text is ``left``, ``right``, ``both`` or sides joined by
    ``;``, ``+``, ``,`` or spaces (``"left;right"``, as in a batch manifest); a
    sequence holds side names.

    Parameters
    ----------
    value : str or iterable of str
    what : str
        What the value is, for the error message (e.g. ``"--side"``).

    Raises
    ------
    FusplanInputError
        No side, or a word that is not a side.
    """
    if isinstance(value, str):
        parts = [part.lower() for part in _SIDE_SEPARATORS.split(value.strip()) if part]
    else:
        parts = [str(part).strip().lower() for part in value]
    if parts == ["both"]:
        return SIDES
    if not parts or any(part not in SIDES for part in parts):
        raise FusplanInputError(f"{what} must be left, right or both (got {value!r})")
    return tuple(side for side in SIDES if side in parts)


__all__ = [
    "ATLASES", "CLP_TARGET", "CT_REGISTRATION_FILE", "REGISTRATION_FILE", "DEFAULT_ATLAS", "DEFAULT_REGISTRATION_PRESET",
    "DEFAULT_SIDE", "DEFAULT_TARGET",
    "REGISTRATION_PRESETS", "SIDES", "SIDE_CHOICES", "SKULL_SOURCES", "STAGES", "parse_sides",
]
