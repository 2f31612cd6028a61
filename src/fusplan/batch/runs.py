"""Batch inputs -> runs: one :class:`RunSpec` per scan, side and sweep point.

Run ids are derived from a hash of the run's inputs (scan and protocol file
contents, side, overrides, atlas, target, fusplan version), so the same command
gives the same ids and a re-run resumes.

Mistakes in the command itself (an input that does not exist, a sweep or ``--set``
key the protocol does not know, a bad value, a protocol that cannot be read) are
raised together as one :class:`FusplanInputError` before anything runs. A bad
manifest row (its own cell, scan or protocol) becomes that row's ``problem``: an
error row, while the other rows run.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

from .._version import __version__
from ..errors import FusplanInputError
from ..protocol import BUNDLED_PROTOCOLS, default_protocol_path, load_protocol, override_protocol
from ..textfile import display_path, parse_yaml_value
from ..vocabulary import DEFAULT_ATLAS, DEFAULT_REGISTRATION_PRESET, DEFAULT_TARGET, parse_sides
from .inputs import (canonical_key, check_plain_value, check_regular_file, collect_scans, expand_sweeps,
                     raise_problems, read_manifest, value_text)

#: Manifest columns that describe a run rather than override the protocol.
RUN_COLUMNS = ("scan", "side", "protocol", "atlas", "target", "ct")


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch (picklable: sent to worker processes).

    Attributes
    ----------
    run_id : str
        ``<scan stem or "phantom">-<side>-<hash>``, stable for the same inputs.
    scan : str
        The scan as written by the user (manifest cell or command-line path);
        ``""`` for the phantom.
    scan_path : str or None
        Absolute path of the scan file.
    side : str or None
        ``"left"`` / ``"right"``; ``None`` in the phantom.
    protocol : str
        The protocol as written by the user (path or bundled name).
    overrides : tuple of (key, value)
        Protocol overrides of this run, sorted by key.
    atlas, target : str
        Atlas and target rule for :func:`fusplan.targeting.locate_targets`.
    scan_hash : str or None
        SHA-256 of the scan file (names its registration cache).
    problem : str or None
        Why the run cannot be simulated (bad manifest row); it becomes an error
        row without using a worker.
    ct_path : str or None
        Absolute path of the subject's head CT (manifest ``ct`` column; NIfTI or DICOM
        folder): the skull model traces it instead of the population skull.
    registration_preset : str
        Atlas registration preset (:data:`fusplan.vocabulary.REGISTRATION_PRESETS`).
    """

    run_id: str
    scan: str
    scan_path: str | None
    side: str | None
    protocol: str
    overrides: tuple[tuple[str, Any], ...]
    atlas: str
    target: str
    scan_hash: str | None = None
    problem: str | None = None
    ct_path: str | None = None
    registration_preset: str = DEFAULT_REGISTRATION_PRESET

    @property
    def parameters(self) -> str:
        """Overrides as ``key=value;key=value`` (canonical text, sorted by key)."""
        return ";".join(f"{k}={value_text(v)}" for k, v in self.overrides)

    def describe(self) -> dict:
        """The run's inputs as a JSON-able mapping (``ct`` only when given, the preset only when not standard)."""
        doc = {
            "run_id": self.run_id,
            "scan": self.scan,
            "side": self.side,
            "protocol": self.protocol,
            "overrides": {k: v for k, v in self.overrides},
            "atlas": self.atlas if self.scan_path else None,
            "target": self.target if self.scan_path else None,
        }
        if self.ct_path:
            doc["ct"] = self.ct_path
        if self.registration_preset != DEFAULT_REGISTRATION_PRESET:
            doc["registration_preset"] = self.registration_preset
        return doc


def plan_runs(
    inputs: Sequence[str | os.PathLike] = (),
    *,
    protocol: str | os.PathLike | None = None,
    sides: Sequence[str] | str = ("left",),
    sweeps=None,
    overrides: Mapping[str, Any] | None = None,
    phantom: bool = False,
    atlas: str = DEFAULT_ATLAS,
    target: str = DEFAULT_TARGET,
    ct: str | os.PathLike | None = None,
    registration_preset: str = DEFAULT_REGISTRATION_PRESET,
) -> list[tuple[RunSpec, Any]]:
    """Expand the batch inputs into runs.

    Parameters are those of :func:`fusplan.batch.run_batch`.

    Returns
    -------
    list of (RunSpec, Protocol or None)
        In input order; the protocol is ``None`` when the run has a ``problem``.

    Raises
    ------
    FusplanInputError
        Mistakes in the command, all listed in one message: no inputs, inputs with
        ``phantom``, a malformed manifest, a missing scan, folder or pattern, a bad
        sweep or side, a protocol that cannot be read, or an override (sweep or
        ``overrides``) the protocol rejects, or ``ct`` without exactly one scan.
    """
    default_sides = parse_sides(sides, "--side")
    points = expand_sweeps(sweeps)
    fixed = {canonical_key(k): v for k, v in (overrides or {}).items()}
    protocol_text = os.fspath(protocol) if protocol is not None else "clt"
    rows: list[dict] = []
    inputs = [os.fspath(i) for i in inputs]
    if phantom:
        if inputs:
            raise FusplanInputError("--phantom takes no scans or manifest (got " + ", ".join(inputs) + ")")
        rows.append(_row("", None, (None,), protocol_text, _protocol_path(protocol_text, Path.cwd()), atlas, target,
                         {}, from_command=True))
    elif not inputs:
        raise FusplanInputError("no input: give a CSV manifest, scans, a folder or a glob pattern (or --phantom)")
    else:
        manifests = [item for item in inputs if item.lower().endswith(".csv")]
        scans = collect_scans([item for item in inputs if not item.lower().endswith(".csv")])
        for manifest in manifests:
            rows.extend(_manifest_rows(Path(manifest), protocol_text, default_sides, atlas, target))
        ct_path = _command_ct(ct, scans, manifests)
        for scan in scans:
            rows.append(_row(scan, str(Path(scan).resolve()), default_sides, protocol_text,
                             _protocol_path(protocol_text, Path.cwd()), atlas, target, {}, from_command=True,
                             ct_path=ct_path))
    _check_regular_files(rows)
    protocols: dict[str, Any] = {}
    _check_command(rows, fixed, points, protocols)
    file_hashes: dict[str, str | None] = {}
    runs: list[tuple[RunSpec, Any]] = []
    seen: set[str] = set()
    for row in rows:
        for point in points:
            merged = {**row["overrides"], **fixed, **point}
            for side in row["sides"]:
                spec, protocol_obj = _make_run(row, side, merged, protocols, file_hashes, registration_preset)
                if spec.run_id not in seen:
                    seen.add(spec.run_id)
                    runs.append((spec, protocol_obj))
    return runs


def _command_ct(ct, scans: list[str], manifests: list[str]) -> str | None:
    """``--ct`` belongs to one subject: it needs exactly one scan (a manifest has a ``ct`` column)."""
    if ct is None:
        return None
    if manifests or len(scans) != 1:
        raise FusplanInputError(f"--ct {ct}: a CT belongs to one subject; give exactly one scan with it "
                                f"(got {len(scans)} scans{' and a manifest' if manifests else ''}; "
                                "a manifest takes a ct column per row)")
    if not Path(ct).exists():
        raise FusplanInputError(f"--ct {ct}: no such CT file or folder")
    return str(Path(ct).resolve())


def _check_regular_files(rows: list[dict]) -> None:
    """Refuse, before any file is hashed, scans and protocols that exist but are not regular files.

    A FIFO or a link to ``/dev/zero`` would be read for ever. Missing files stay
    a row's problem (the run reports it).
    """
    problems = []
    for row in rows:
        for path, shown in ((row["scan_path"], row["scan"]), (row["protocol_path"], row["protocol"])):
            if path is not None:
                problem = check_regular_file(path, shown or path)
                if problem is not None:
                    problems.append(problem)
    raise_problems(problems)


def _check_command(rows: list[dict], fixed: dict, points: list[dict], protocols: dict) -> None:
    """Raise every problem of the command itself: its protocol and its overrides.

    The command's protocol (for the phantom and scans given directly) must load;
    every sweep point with the ``overrides`` must be accepted by every protocol of
    the batch. Problems of a manifest row's own cells stay that row's problem.
    """
    problems = []
    failing_points: dict[str, list[str]] = {}  # message -> the sweep points that raise it
    checked: set[str] = set()
    for row in rows:
        base = _base_protocol(row["protocol_path"], protocols)
        if isinstance(base, Exception):
            if row["from_command"]:
                problems.append(str(base))
            continue
        if row["protocol_path"] in checked or not (fixed or any(points)):
            continue
        checked.add(row["protocol_path"])
        for point in points:
            try:
                override_protocol(base, {**fixed, **point})
            except FusplanInputError as error:
                shown = ", ".join(f"{k}={value_text(v)}" for k, v in {**fixed, **point}.items())
                failing_points.setdefault(str(error), []).append(shown)
    for message, shown in failing_points.items():
        problems.append(f"{message} (with {'; '.join(shown)})")
    raise_problems(problems)


def _base_protocol(path: str, protocols: dict):
    """The protocol at ``path`` (cached), or the FusplanInputError loading it raised."""
    if path not in protocols:
        try:
            protocols[path] = load_protocol(path)
        except FusplanInputError as error:
            protocols[path] = error
    return protocols[path]


def _row(scan, scan_path, sides, protocol_text, protocol_path, atlas, target, overrides, problem=None,
         from_command=False, ct_path=None) -> dict:
    return {"scan": scan, "scan_path": scan_path, "sides": sides, "protocol": protocol_text,
            "protocol_path": protocol_path, "atlas": atlas, "target": target, "overrides": overrides,
            "problem": problem, "from_command": from_command, "ct_path": ct_path}


def _manifest_rows(path: Path, default_protocol: str, default_sides, atlas: str, target: str) -> list[dict]:
    folder = path.resolve().parent
    rows = []
    for number, cells in enumerate(read_manifest(path), start=2):
        problem = None
        scan = cells.get("scan", "")
        scan_path = str((folder / scan).resolve()) if scan else None
        try:
            sides = parse_sides(cells["side"], f"{path.name} row {number}: side") if cells.get("side") else default_sides
        except FusplanInputError as error:
            sides, problem = default_sides, str(error)
        if scan_path is None:
            sides = (None,)
        ct_path = str((folder / cells["ct"]).resolve()) if cells.get("ct") else None
        if ct_path is not None and scan_path is None:
            problem = problem or f"{path.name} row {number}: ct needs a scan (the CT is registered to it)"
        elif ct_path is not None and not Path(ct_path).exists():
            problem = problem or f"{path.name} row {number}: ct {cells['ct']}: no such CT file or folder"
        protocol_text = cells.get("protocol") or default_protocol
        base = folder if cells.get("protocol") else Path.cwd()
        overrides = {}
        for column, cell in cells.items():
            if column in RUN_COLUMNS or cell == "":
                continue
            where = f"{display_path(path)} row {number}: {column}"
            try:
                value = parse_yaml_value(cell, label=f"{where}: value {cell!r}")
            except FusplanInputError as error:  # a typo in one cell fails that row only
                problem = problem or str(error)
                continue
            check_plain_value(value, where)  # a date or bytes cell: the manifest itself is wrong (exit 2)
            overrides[canonical_key(column)] = value
        rows.append(_row(scan, scan_path, sides, protocol_text, _protocol_path(protocol_text, base),
                         cells.get("atlas") or atlas, cells.get("target") or target, overrides, problem,
                         from_command=not cells.get("protocol"), ct_path=ct_path))
    return rows


def _make_run(row: dict, side, overrides: dict, protocols: dict, file_hashes: dict,
              registration_preset: str) -> tuple[RunSpec, Any]:
    items = tuple(sorted(overrides.items()))
    scan_hash = _file_hash(row["scan_path"], file_hashes) if row["scan_path"] else None
    protocol_hash = _file_hash(row["protocol_path"], file_hashes)
    identity = {
        "fusplan": __version__,
        "scan": scan_hash or row["scan_path"],
        "side": side,
        "protocol": protocol_hash or row["protocol_path"],
        "overrides": [[k, v] for k, v in items],
        "atlas": row["atlas"] if row["scan_path"] else None,
        "target": row["target"] if row["scan_path"] else None,
    }
    if row.get("ct_path"):  # only then: run ids without a CT stay as they were
        identity["ct"] = _file_hash(row["ct_path"], file_hashes) if Path(row["ct_path"]).is_file() else row["ct_path"]
    if row["scan_path"] and registration_preset != DEFAULT_REGISTRATION_PRESET:  # likewise: standard ids unchanged
        identity["registration_preset"] = registration_preset
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    stem = slug(_scan_stem(row["scan"])) if row["scan"] else "phantom"
    run_id = "-".join(part for part in (stem, side, digest) if part)
    problem = row["problem"]
    protocol_obj = None
    if problem is None:
        try:
            base = _base_protocol(row["protocol_path"], protocols)
            if isinstance(base, Exception):
                raise base
            protocol_obj = override_protocol(base, dict(items)) if items else base
        except FusplanInputError as error:
            problem = str(error)
    spec = RunSpec(run_id=run_id, scan=row["scan"], scan_path=row["scan_path"], side=side,
                   protocol=row["protocol"], overrides=items, atlas=row["atlas"], target=row["target"],
                   scan_hash=scan_hash, problem=problem, ct_path=row.get("ct_path"),
                   registration_preset=registration_preset)
    return spec, protocol_obj


def _protocol_path(text: str, base: Path) -> str:
    candidate = Path(text) if Path(text).is_absolute() else base / text
    if not candidate.exists() and text.lower() in BUNDLED_PROTOCOLS:
        return str(default_protocol_path(text))
    return str(candidate.resolve())


def _scan_stem(scan: str) -> str:
    name = Path(scan).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def slug(text: str) -> str:
    """``text`` reduced to a short file-name-safe word (letters, digits, ``_`` and ``.``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_.")[:40] or "scan"


def _file_hash(path: str | None, cache: dict) -> str | None:
    if path is None:
        return None
    if path not in cache:
        try:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            cache[path] = digest.hexdigest()
        except OSError:
            cache[path] = None
    return cache[path]
