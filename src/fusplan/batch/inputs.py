"""Batch inputs: sweep and override text, CSV manifests, scan files, folders and globs.

These functions only read and check what the user gave; :mod:`fusplan.batch.runs`
turns it into runs.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import itertools
import json
import os
import stat
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence

from ..errors import FusplanInputError
from ..textfile import display_path, parse_yaml_value, read_text_limited

#: Short override names accepted in manifests and sweeps, and what they mean.
ALIASES = {
    "skull_transmission": "transducer.skull_transmission",
    "frequency_khz": "transducer.frequency_khz",
    "spacing_mm": "grid.spacing_mm",
    "extent_mm": "grid.extent_mm",
    "perfusion_ml_min_kg": "tissue.perfusion_ml_min_kg",
    "conductivity_w_m_k": "tissue.conductivity_w_m_k",
}
SCAN_SUFFIXES = (".nii", ".nii.gz")
#: How many problems an input error lists before "and N more".
MAX_LISTED_PROBLEMS = 5


def parse_sweep(text: str) -> tuple[str, list]:
    """Parse ``"key=v1,v2,..."`` into a key and a list of YAML-parsed values.

    Commas inside brackets do not split, so ``offset_mm=[0,0,0],[1,0,0]`` gives
    two vectors.
    """
    key, sep, values = str(text).partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise FusplanInputError(f"--sweep {text!r} must look like key=v1,v2,... (e.g. peak_c=54,56,58)")
    parts, depth, current = [], 0, []
    for char in values:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    parsed = []
    for part in parts:
        if not part.strip():
            raise FusplanInputError(f"--sweep {key}: empty value in {values!r}")
        parsed.append(parse_value(part, f"--sweep {key}"))
    return canonical_key(key), parsed


def expand_sweeps(sweeps: Mapping[str, Sequence] | Sequence[tuple[str, Sequence]] | None) -> list[dict]:
    """Cartesian product of sweep values: a list of ``{key: value}`` points.

    Keys keep their given order; values their given order, so the expansion is
    deterministic. No sweeps give one empty point.
    """
    items = list(sweeps.items()) if isinstance(sweeps, Mapping) else list(sweeps or ())
    keys = [canonical_key(k) for k, _ in items]
    if len(set(keys)) != len(keys):
        raise FusplanInputError(f"--sweep given twice for the same key ({', '.join(keys)})")
    value_lists = []
    for key, values in items:
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise FusplanInputError(f"--sweep {key}: no values")
        value_lists.append(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*value_lists)]


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Read a CSV manifest into a list of row mappings (column -> stripped text).

    The file is read with :func:`fusplan.textfile.read_text_limited` (a regular
    UTF-8 file of at most :data:`fusplan.textfile.MAX_TEXT_BYTES`).

    Raises
    ------
    FusplanInputError
        Missing, unreadable, oversized or non-regular file, a NUL character, no
        header, no ``scan`` column, repeated columns, or no data rows.
    """
    path = Path(path)
    text = read_text_limited(path, what="manifest")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise FusplanInputError(f"{display_path(path)}: line {line} contains a NUL character (not a text manifest)")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise FusplanInputError(f"{path}: manifest is empty (expected a header row with a 'scan' column)")
    try:
        reader = csv.reader(lines, strict=True)
        header = [h.strip() for h in next(reader)]
        records = list(reader)
    except csv.Error as error:
        raise FusplanInputError(f"{path}: not a valid CSV file ({error})") from None
    if "scan" not in header:
        raise FusplanInputError(f"{path}: manifest has no 'scan' column (header: {', '.join(header)})")
    if any(not h for h in header):
        raise FusplanInputError(f"{path}: manifest header has an empty column name")
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1})
        raise FusplanInputError(f"{path}: manifest column {repeated[0]!r} given twice")
    rows = []
    for number, record in enumerate(records, start=2):
        if len(record) > len(header):
            raise FusplanInputError(f"{path}: row {number} has {len(record)} cells but the header has {len(header)}")
        record = [cell.strip() for cell in record] + [""] * (len(header) - len(record))
        rows.append(dict(zip(header, record)))
    if not rows:
        raise FusplanInputError(f"{path}: manifest has a header but no rows")
    return rows


def collect_scans(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Scan paths from files, folders (``*.nii``/``*.nii.gz`` inside) and glob patterns.

    Returns the paths as text, sorted within each input, duplicates removed.

    Raises
    ------
    FusplanInputError
        Listing every input that does not exist, is an empty folder, or is a
        pattern that matches no scan (a file that exists but cannot be read
        becomes an error row later).
    """
    found: list[str] = []
    problems: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        try:
            matches, problem = _matches(text, path)
        except OSError as error:  # a name too long, a folder that cannot be searched...
            matches, problem = [], f"{display_path(text)}: cannot read ({error.strerror or type(error).__name__})"
        if problem:
            problems.append(problem)
        found.extend(m for m in matches if m not in found)
    raise_problems(problems)
    return found


def _matches(text: str, path: Path) -> tuple[list[str], str | None]:
    """The scans an input names, and the problem when it names none (OSError passes through)."""
    if path.is_dir():
        matches = sorted(str(p) for p in path.iterdir() if p.is_file() and is_scan_name(p.name))
        return matches, None if matches else f"{display_path(path)}: folder holds no .nii or .nii.gz scan"
    if glob.has_magic(text):
        matches = sorted(p for p in glob.glob(text) if is_scan_name(p))
        return matches, None if matches else f"{display_path(text)}: pattern matches no .nii or .nii.gz scan"
    if not os.path.lexists(text):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.stat(text)  # raises for a name too long or a folder that cannot be searched
        kind = "folder" if text.endswith(("/", os.sep)) or not is_scan_name(text) else "file"
        return [], f"{display_path(text)}: no such {kind}"
    return [text], None


def check_regular_file(path: str | os.PathLike, shown: str | os.PathLike | None = None) -> str | None:
    """Why ``path`` cannot be read as an input file (FIFO, device, folder, unsearchable), or None.

    ``shown``: the name the user gave (default ``path``), used in the message. A
    missing file gives None (the run that needs it reports it).
    """
    name = display_path(path if shown is None else shown)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"{name}: cannot read ({error.strerror or type(error).__name__})"
    if stat.S_ISDIR(mode):
        return f"{name}: is a folder, not a file"
    if not stat.S_ISREG(mode):
        return f"{name}: is not a regular file (a FIFO, socket or device); refused before reading"
    return None


def raise_problems(problems: Sequence[str]) -> None:
    """Raise one :class:`FusplanInputError` listing ``problems`` (the first few, "and N more")."""
    unique = list(dict.fromkeys(problems))
    if not unique:
        return
    shown = "; ".join(unique[:MAX_LISTED_PROBLEMS])
    more = len(unique) - MAX_LISTED_PROBLEMS
    raise FusplanInputError(shown + (f"; and {more} more" if more > 0 else ""))


def canonical_key(key: str) -> str:
    """The protocol override key of a manifest column or sweep key (aliases resolved)."""
    key = str(key).strip()
    return ALIASES.get(key, key)


def parse_value(text: str, what: str):
    """A manifest cell or sweep value parsed as YAML (``56`` -> 56, ``1e9`` -> 1e9, ``[0,0,1]`` -> list).

    Parsed by :func:`fusplan.textfile.parse_yaml_value`; values that are not plain
    JSON data (dates, ``!!binary`` bytes, sets) are refused naming ``what``.
    """
    value = parse_yaml_value(str(text), label=f"{what}: value {text!r}")
    check_plain_value(value, what)
    return value


def check_plain_value(value, what: str) -> None:
    """Refuse a value that is not JSON data: null, bool, number, string, list, or mapping of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_plain_value(item, what)
        return
    if isinstance(value, dict):
        for item in value.values():
            check_plain_value(item, what)
        return
    raise FusplanInputError(f"{what}: a {type(value).__name__} value is not allowed (quote it, or give a number)")


def value_text(value) -> str:
    """Canonical text of an override value (strings as they are, the rest as JSON)."""
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def is_scan_name(name: str) -> bool:
    """True for ``*.nii`` and ``*.nii.gz`` names (any case)."""
    return name.lower().endswith(SCAN_SUFFIXES)
