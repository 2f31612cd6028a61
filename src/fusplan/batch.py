"""Batch planning: many scans, protocols and parameter sweeps, in parallel, resumable.

A batch is a list of *runs*; a run is one simulation: one scan (or the homogeneous
phantom), one side, one protocol with its overrides. Runs come from

- a CSV manifest: one row per scan, columns ``scan`` (path relative to the
  manifest's folder; empty for the phantom), optional ``side`` (``left``,
  ``right`` or ``both``), ``protocol`` (path relative to the manifest's folder, or
  a bundled name such as ``clt``), ``atlas``, ``target``, and any other column is a
  protocol override applied to that row (``peak_c``, ``duration_s``,
  ``treatment.cooling_s``, ``skull_transmission``...; an empty cell means no
  override);
- scan files, folders (every ``*.nii``/``*.nii.gz`` inside) or glob patterns,
  all planned with one protocol;
- ``phantom=True``: no scans, the protocol is simulated in the homogeneous phantom.

Every run is then crossed with the cartesian product of the sweeps
(``{"peak_c": [54, 56, 58]}``).

Work is done in two phases. Phase 1 registers each distinct (scan, atlas) once and
caches the registration in ``<out>/registration/``. Phase 2 simulates runs in
tasks that group runs sharing a scan, side and protocol geometry (transducer and
grid), so a worker loads the scan and registration once and the planner's
heat-source cache serves every sweep point of that target.

Outputs (every file written atomically)::

    <out>/runs/<run_id>.json     contract JSON report + a "run" block (inputs, timing)
    <out>/summary.csv            one row per run, sorted, no timings (reproducible)
    <out>/registration/...       cached registrations, one per (scan, atlas)

Run ids are derived from a hash of the run's inputs (scan and protocol file
contents, side, overrides, atlas, target, fusplan version), so re-running the same
command skips the runs whose report exists (resume after an interruption) and
the summary is byte-identical.
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from . import __version__
from .errors import FusplanInputError
from .io import atomic_output

RUNS_DIR = "runs"
REGISTRATION_DIR = "registration"
SUMMARY_NAME = "summary.csv"
SIDES = ("left", "right")
#: Manifest columns that describe a run rather than override the protocol.
RUN_COLUMNS = ("scan", "side", "protocol", "atlas", "target")
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
#: Upper bound on runs per task: larger tasks reuse more, smaller ones balance better.
MAX_RUNS_PER_TASK = 8


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
        Why the run cannot be simulated (bad protocol or override); it becomes an
        error row without using a worker.
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

    @property
    def parameters(self) -> str:
        """Overrides as ``key=value;key=value`` (canonical text, sorted by key)."""
        return ";".join(f"{k}={_value_text(v)}" for k, v in self.overrides)

    def describe(self) -> dict:
        """The run's inputs as a JSON-able mapping."""
        return {
            "run_id": self.run_id,
            "scan": self.scan,
            "side": self.side,
            "protocol": self.protocol,
            "overrides": {k: v for k, v in self.overrides},
            "atlas": self.atlas if self.scan_path else None,
            "target": self.target if self.scan_path else None,
        }


@dataclass(frozen=True)
class BatchResult:
    """What :func:`run_batch` did.

    Attributes
    ----------
    out_dir : Path
    summary_path : Path
    rows : list of dict
        The summary rows (column -> text), sorted as in ``summary.csv``.
    n_runs, n_failed, n_resumed : int
        Runs in the batch, runs with status ``error``, runs skipped because their
        report already existed.
    elapsed_s : float
        Wall time of the whole batch.
    registration_s : float
        Wall time of phase 1 (registration).
    """

    out_dir: Path
    summary_path: Path
    rows: list
    n_runs: int
    n_failed: int
    n_resumed: int
    elapsed_s: float
    registration_s: float = 0.0


# ------------------------------------------------------------------- inputs -> runs


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
        parsed.append(_parse_value(part, f"--sweep {key}"))
    return _canonical_key(key), parsed


def expand_sweeps(sweeps: Mapping[str, Sequence] | Sequence[tuple[str, Sequence]] | None) -> list[dict]:
    """Cartesian product of sweep values: a list of ``{key: value}`` points.

    Keys keep their given order; values their given order, so the expansion is
    deterministic. No sweeps give one empty point.
    """
    items = list(sweeps.items()) if isinstance(sweeps, Mapping) else list(sweeps or ())
    keys = [_canonical_key(k) for k, _ in items]
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

    Raises
    ------
    FusplanInputError
        Missing or unreadable file, no header, no ``scan`` column, repeated
        columns, or no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FusplanInputError(f"{path}: manifest not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise FusplanInputError(f"{path}: cannot read manifest ({error.__class__.__name__})") from None
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
    """
    found: list[str] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(str(p) for p in path.iterdir() if p.is_file() and _is_scan_name(p.name))
            if not matches:
                raise FusplanInputError(f"{path}: folder holds no .nii or .nii.gz scan")
        elif glob.has_magic(text):
            matches = sorted(p for p in glob.glob(text) if _is_scan_name(p))
            if not matches:
                raise FusplanInputError(f"{text}: pattern matches no .nii or .nii.gz scan")
        else:
            matches = [text]  # a missing or bad file becomes an error row, not a batch failure
        found.extend(m for m in matches if m not in found)
    return found


def plan_runs(
    inputs: Sequence[str | os.PathLike] = (),
    *,
    protocol: str | os.PathLike | None = None,
    sides: Sequence[str] | str = ("left",),
    sweeps=None,
    overrides: Mapping[str, Any] | None = None,
    phantom: bool = False,
    atlas: str = "morel",
    target: str = "CLp",
) -> list[tuple[RunSpec, Any]]:
    """Expand the batch inputs into runs.

    Parameters are those of :func:`run_batch`.

    Returns
    -------
    list of (RunSpec, Protocol or None)
        In input order; the protocol is ``None`` when the run has a ``problem``.

    Raises
    ------
    FusplanInputError
        Batch-level problems: no inputs, inputs with ``phantom``, a malformed
        manifest, a bad sweep or side, a protocol given that cannot be read.
    """
    default_sides = _parse_sides(sides, "--side")
    points = expand_sweeps(sweeps)
    fixed = {_canonical_key(k): v for k, v in (overrides or {}).items()}
    protocol_text = os.fspath(protocol) if protocol is not None else "clt"
    rows: list[dict] = []  # scan (text), scan_path, sides, protocol text, protocol path, atlas, target, overrides
    inputs = [os.fspath(i) for i in inputs]
    if phantom:
        if inputs:
            raise FusplanInputError("--phantom takes no scans or manifest (got " + ", ".join(inputs) + ")")
        rows.append(_row("", None, (None,), protocol_text, _protocol_path(protocol_text, Path.cwd()), atlas, target, {}))
    elif not inputs:
        raise FusplanInputError("no input: give a CSV manifest, scans, a folder or a glob pattern (or --phantom)")
    else:
        scans = []
        for item in inputs:
            if item.lower().endswith(".csv"):
                rows.extend(_manifest_rows(Path(item), protocol_text, default_sides, atlas, target))
            else:
                scans.append(item)
        for scan in collect_scans(scans) if scans else []:
            rows.append(_row(scan, str(Path(scan).resolve()), default_sides, protocol_text,
                             _protocol_path(protocol_text, Path.cwd()), atlas, target, {}))
    base_cache: dict[str, Any] = {}
    file_hashes: dict[str, str | None] = {}
    runs: list[tuple[RunSpec, Any]] = []
    seen: set[str] = set()
    for row in rows:
        for point in points:
            merged = {**row["overrides"], **fixed, **point}
            for side in row["sides"]:
                spec, protocol_obj = _make_run(row, side, merged, base_cache, file_hashes)
                if spec.run_id not in seen:
                    seen.add(spec.run_id)
                    runs.append((spec, protocol_obj))
    return runs


def _row(scan, scan_path, sides, protocol_text, protocol_path, atlas, target, overrides, problem=None) -> dict:
    return {"scan": scan, "scan_path": scan_path, "sides": sides, "protocol": protocol_text,
            "protocol_path": protocol_path, "atlas": atlas, "target": target, "overrides": overrides,
            "problem": problem}


def _manifest_rows(path: Path, default_protocol: str, default_sides, atlas: str, target: str) -> list[dict]:
    folder = path.resolve().parent
    rows = []
    for number, cells in enumerate(read_manifest(path), start=2):
        problem = None
        scan = cells.get("scan", "")
        scan_path = str((folder / scan).resolve()) if scan else None
        try:
            sides = _parse_sides(cells["side"], f"{path.name} row {number}: side") if cells.get("side") else default_sides
        except FusplanInputError as error:
            sides, problem = default_sides, str(error)
        if scan_path is None:
            sides = (None,)
        protocol_text = cells.get("protocol") or default_protocol
        base = folder if cells.get("protocol") else Path.cwd()
        overrides = {}
        for column, cell in cells.items():
            if column in RUN_COLUMNS or cell == "":
                continue
            try:
                overrides[_canonical_key(column)] = _parse_value(cell, f"{path.name} row {number}: {column}")
            except FusplanInputError as error:
                problem = problem or str(error)
        rows.append(_row(scan, scan_path, sides, protocol_text, _protocol_path(protocol_text, base),
                         cells.get("atlas") or atlas, cells.get("target") or target, overrides, problem))
    return rows


def _make_run(row: dict, side, overrides: dict, base_cache: dict, file_hashes: dict) -> tuple[RunSpec, Any]:
    from .protocol import load_protocol, override_protocol

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
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    stem = _slug(_scan_stem(row["scan"])) if row["scan"] else "phantom"
    run_id = "-".join(part for part in (stem, side, digest) if part)
    problem = row["problem"]
    protocol_obj = None
    if problem is None:
        try:
            key = row["protocol_path"]
            if key not in base_cache:
                try:
                    base_cache[key] = load_protocol(key)
                except FusplanInputError as error:
                    base_cache[key] = error
            base = base_cache[key]
            if isinstance(base, Exception):
                raise base
            protocol_obj = override_protocol(base, dict(items)) if items else base
        except FusplanInputError as error:
            problem = str(error)
    spec = RunSpec(run_id=run_id, scan=row["scan"], scan_path=row["scan_path"], side=side,
                   protocol=row["protocol"], overrides=items, atlas=row["atlas"], target=row["target"],
                   scan_hash=scan_hash, problem=problem)
    return spec, protocol_obj


def _protocol_path(text: str, base: Path) -> str:
    from .protocol import BUNDLED_PROTOCOLS, default_protocol_path

    candidate = Path(text) if Path(text).is_absolute() else base / text
    if not candidate.exists() and text in BUNDLED_PROTOCOLS:
        return str(default_protocol_path(text))
    return str(candidate.resolve())


def _parse_sides(value, what: str) -> tuple:
    if isinstance(value, str):
        value = value.strip().lower()
        if value == "both":
            return SIDES
        parts = [p.strip() for p in re.split(r"[;+ ]+", value) if p.strip()]
    else:
        parts = [str(p).strip().lower() for p in value]
    if not parts or any(p not in SIDES for p in parts):
        raise FusplanInputError(f"{what} must be left, right or both (got {value!r})")
    return tuple(s for s in SIDES if s in parts)


def _canonical_key(key: str) -> str:
    key = str(key).strip()
    return ALIASES.get(key, key)


def _parse_value(text: str, what: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise FusplanInputError(f"{what}: cannot parse value {text!r}") from None


def _value_text(value) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def _is_scan_name(name: str) -> bool:
    return name.lower().endswith(SCAN_SUFFIXES)


def _scan_stem(scan: str) -> str:
    name = Path(scan).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _slug(text: str) -> str:
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


# ------------------------------------------------------------------------- workers


def registration_cache_path(out_dir: str | os.PathLike, scan_hash: str, atlas: str) -> Path:
    """Where the registration of a scan (by content hash) to an atlas is cached."""
    return Path(out_dir) / REGISTRATION_DIR / f"{scan_hash[:16]}-{_slug(atlas)}.npz"


def register_scan(scan_path: str, atlas: str, cache_path: str) -> dict:
    """Phase 1 task: register the atlas template to one scan and cache the result.

    Returns ``{"ok": bool, "error": str | None, "elapsed_s": float}``; never raises
    for bad input, so one bad scan does not stop the batch.
    """
    start = time.perf_counter()
    try:
        from .io import load_scan
        from .registration import register

        register(load_scan(scan_path), atlas).save(cache_path)  # save() is atomic
        return {"ok": True, "error": None, "elapsed_s": time.perf_counter() - start}
    except Exception as error:  # noqa: BLE001 - every failure becomes an error row
        return {"ok": False, "error": _one_line(error), "elapsed_s": time.perf_counter() - start}


def simulate_runs(out_dir: str, items: Sequence[tuple[RunSpec, Any]], registration_path: str | None,
                  reuse: bool = True) -> list[dict]:
    """Phase 2 task: simulate runs that share a scan and side; write their reports.

    The scan is loaded and its targets located once for the whole task (from the
    cached registration when ``registration_path`` exists); the planner's
    heat-source cache serves every run whose focus and geometry match. With
    ``reuse=False`` every run registers its scan afresh and the heat-source cache
    is cleared between runs (the benchmark's baseline).

    Returns one summary row per run (failures become error rows).
    """
    from .report import dumps_json

    rows = []
    context: dict[str, Any] = {}
    for spec, protocol in items:
        start = time.perf_counter()
        try:
            if not reuse:
                context = {}
                _clear_planner_cache()
            doc = _simulate_one(spec, protocol, registration_path if reuse else None, context)
            doc["run"] = {**spec.describe(), "status": "ok", "elapsed_s": round(time.perf_counter() - start, 3)}
            text = dumps_json(doc)
            with atomic_output(Path(out_dir) / RUNS_DIR / f"{spec.run_id}.json") as tmp:
                Path(tmp).write_text(text, encoding="utf-8")
            # The row comes from the written text, so a resumed run gives the very same row.
            rows.append(summary_row(json.loads(text)))
        except Exception as error:  # noqa: BLE001 - every failure becomes an error row
            rows.append(error_row(spec, _one_line(error)))
    return rows


def _simulate_one(spec: RunSpec, protocol, registration_path: str | None, context: dict) -> dict:
    from .planner import simulate

    if spec.scan_path is None:
        return simulate(protocol).to_dict()
    if "scan" not in context:
        from .io import load_scan
        from .targeting import locate_targets

        scan = load_scan(spec.scan_path)
        registration = None
        if registration_path and Path(registration_path).is_file():
            registration = _load_registration(Path(registration_path))
        context["scan"] = scan
        context["targets"] = locate_targets(scan, atlas=spec.atlas, sides=(spec.side,), target=spec.target,
                                            registration=registration)
    return simulate(protocol, scan=context["scan"], targets=context["targets"], sides=(spec.side,)).to_dict()


def _load_registration(path: Path):
    from .registration import load_registration

    return load_registration(path)


def _clear_planner_cache() -> None:
    from . import planner

    clear = getattr(planner, "clear_cache", None)
    if clear is not None:
        clear()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, FusplanInputError):
        return text or "bad input"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ------------------------------------------------------------------------- summary

_BASE_COLUMNS = (
    "run_id", "scan", "side", "protocol", "parameters", "status", "error",
    "target", "target_r_mm", "target_a_mm", "target_s_mm", "acpc_x_mm", "acpc_y_mm", "acpc_z_mm",
    "peak_temperature_c", "thermometry_peak_c", "sonication_peaks_c", "total_energy_j",
)
_LESION_FIELDS = (("lr_mm", "lr_mm"), ("ap_mm", "ap_mm"), ("si_mm", "si_mm"),
                  ("volume_mm3", "volume_mm3"), ("diameter_mm", "equivalent_diameter_mm"))


def summary_row(doc: Mapping) -> dict:
    """Summary row (column -> text) of one run from its JSON report (with its ``run`` block)."""
    run = doc["run"]
    row = {
        "run_id": run["run_id"], "scan": run["scan"], "side": run["side"] or "", "protocol": run["protocol"],
        "parameters": ";".join(f"{k}={_value_text(v)}" for k, v in sorted(run["overrides"].items())),
        "status": "ok", "error": "",
    }
    for key, value in sorted(run["overrides"].items()):
        row[f"param:{key}"] = _value_text(value)
    targets = [t for t in doc.get("targets") or [] if t.get("side") in (run["side"], None)]
    if targets:
        found = targets[0]
        row["target"] = found.get("name", "")
        for column, value in zip(("target_r_mm", "target_a_mm", "target_s_mm"), found["ras_mm"]):
            row[column] = _number(value, 2)
        for column, value in zip(("acpc_x_mm", "acpc_y_mm", "acpc_z_mm"), found["acpc_mm"]):
            row[column] = _number(value, 2)
    sonications = [s for s in doc.get("sonications", []) if s.get("side") in (run["side"], None)]
    if sonications:
        row["peak_temperature_c"] = _number(max(s["peak_temperature_c"] for s in sonications), 2)
        measured = [s["thermometry_peak_c"] for s in sonications if s.get("thermometry_peak_c") is not None]
        row["thermometry_peak_c"] = _number(max(measured), 2) if measured else ""
        row["sonication_peaks_c"] = ";".join(_number(s["peak_temperature_c"], 2) for s in sonications)
        row["total_energy_j"] = _number(sum(s.get("energy_j", 0.0) for s in sonications), 1)
    for lesion in doc.get("lesions", []):
        if lesion.get("side") not in (run["side"], None):
            continue
        prefix = f"lesion{_threshold_text(lesion['threshold_cem43'])}"
        for name, key in _LESION_FIELDS:
            row[f"{prefix}_{name}"] = _number(lesion[key], 3)
    return row


def error_row(spec: RunSpec, message: str) -> dict:
    """Summary row of a failed run."""
    row = {"run_id": spec.run_id, "scan": spec.scan, "side": spec.side or "", "protocol": spec.protocol,
           "parameters": spec.parameters, "status": "error", "error": message}
    for key, value in spec.overrides:
        row[f"param:{key}"] = _value_text(value)
    return row


def write_summary(rows: Sequence[Mapping], path: str | os.PathLike) -> Path:
    """Write summary rows as CSV (atomically), columns in a fixed order.

    Columns: the run description, the target, the peaks, one ``param:<key>``
    column per override key, and ``lesion<threshold>_{lr,ap,si,volume,diameter}``
    per CEM43 threshold (ascending). Rows are sorted by scan, side, protocol,
    then parameter values (numbers numerically) and run id.
    """
    params = sorted({c for r in rows for c in r if c.startswith("param:")})
    lesion_columns = sorted({c for r in rows for c in r if c.startswith("lesion")}, key=_lesion_column_order)
    columns = [*_BASE_COLUMNS, *params, *lesion_columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in sort_rows(rows):
        writer.writerow({c: row.get(c, "") for c in columns})
    path = Path(path)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")
    return path


def sort_rows(rows: Iterable[Mapping]) -> list:
    """Rows in summary order (deterministic, numbers compared as numbers)."""
    def key(row):
        params = tuple((k, _sort_value(v)) for k, v in sorted(row.items()) if k.startswith("param:"))
        return (row.get("scan", ""), row.get("side", ""), row.get("protocol", ""), params, row["run_id"])
    return sorted(rows, key=key)


def _sort_value(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _lesion_column_order(column: str):
    match = re.match(r"lesion([0-9.eE+-]+)_(\w+)", column)
    names = [n for n, _ in _LESION_FIELDS]
    if match is None:
        return (math.inf, 0, column)
    field_name = match.group(2)
    return (float(match.group(1)), names.index(field_name) if field_name in names else len(names), column)


def _threshold_text(value: float) -> str:
    return f"{float(value):g}"


def _number(value, digits: int) -> str:
    if value is None:
        return ""
    text = f"{float(value):.{digits}f}"
    return "0." + "0" * digits if float(text) == 0 else text  # no "-0.00"


# -------------------------------------------------------------------------- engine


class _Inline:
    """Runs tasks in this process (``workers=1``), one by one as results are asked for."""

    def submit(self, fn, *args):
        return _Deferred(fn, args)

    @staticmethod
    def as_completed(futures):
        return iter(futures)

    def close(self, cancel: bool = False):
        pass


class _Deferred:
    """A task run when its result is first asked for (so progress advances per task)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __hash__(self):
        return id(self)

    def result(self):
        return self.fn(*self.args)


def limit_threads(threads: int) -> None:
    """Let the FFTs of this worker process use at most ``threads`` threads.

    Run in each worker so that ``workers x threads`` does not oversubscribe the cores.
    """
    from . import bioheat

    bioheat.WORKERS = max(1, int(threads))


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


class _Pool:
    """Local process pool."""

    def __init__(self, workers: int):
        self.executor = ProcessPoolExecutor(max_workers=workers, initializer=limit_threads,
                                            initargs=(_threads_per_worker(workers),))

    def submit(self, fn, *args):
        return self.executor.submit(fn, *args)

    @staticmethod
    def as_completed(futures):
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from done

    def close(self, cancel: bool = False):
        self.executor.shutdown(wait=True, cancel_futures=cancel)


class _Dask:
    """A Dask distributed client: an existing scheduler, or an embedded LocalCluster."""

    def __init__(self, scheduler: str | None, workers: int):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise FusplanInputError(
                "--dask/--scheduler need Dask distributed, which is not installed "
                "(pip install 'fusplan[dask]')"
            ) from None
        self.cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None)
                self.client = Client(self.cluster)
                self.client.run(limit_threads, _threads_per_worker(workers))
        except (OSError, TimeoutError) as error:
            raise FusplanInputError(f"cannot connect to the Dask scheduler {scheduler!r} ({_one_line(error)})") from None

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    @staticmethod
    def as_completed(futures):
        from dask.distributed import as_completed

        return as_completed(list(futures))

    def close(self, cancel: bool = False):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def default_workers() -> int:
    """Default number of local worker processes: ``min(2, cpu count)``."""
    return max(1, min(2, os.cpu_count() or 1))


def run_batch(
    inputs: Sequence[str | os.PathLike] = (),
    out_dir: str | os.PathLike = "fusplan-batch",
    *,
    protocol: str | os.PathLike | None = None,
    sides: Sequence[str] | str = ("left",),
    sweeps=None,
    overrides: Mapping[str, Any] | None = None,
    phantom: bool = False,
    atlas: str = "morel",
    target: str = "CLp",
    workers: int | None = None,
    dask: bool = False,
    scheduler: str | None = None,
    reuse: bool = True,
    progress: bool | Callable[[str, int, int], None] = True,
) -> BatchResult:
    """Plan many runs, in parallel, and write their reports and a summary table.

    Parameters
    ----------
    inputs : sequence of path
        CSV manifests (``*.csv``), scan files, folders of scans or glob patterns.
    out_dir : path
        Output folder (``runs/``, ``registration/``, ``summary.csv``). Runs whose
        report already exists there are not simulated again.
    protocol : path or str, optional
        Protocol for scans given directly, for manifest rows without a
        ``protocol`` cell, and for the phantom; default the bundled ``clt``.
    sides : "left", "right", "both" or sequence
        Sides for scans given directly and manifest rows without a ``side`` cell.
    sweeps : mapping key -> values, or sequence of (key, values)
        Protocol parameters to sweep; every run is repeated for each point of the
        cartesian product (keys as in :func:`fusplan.protocol.override_protocol`,
        plus the aliases in :data:`ALIASES`).
    overrides : mapping, optional
        Overrides applied to every run. Precedence when a key is given twice:
        manifest cell < ``overrides`` < sweep point.
    phantom : bool
        Simulate in the homogeneous phantom (no scans).
    atlas, target : str
        Defaults for targeting (manifest columns may override them).
    workers : int, optional
        Local worker processes (default :func:`default_workers`); 1 runs in this
        process. With Dask, the number of LocalCluster workers.
    dask : bool
        Use Dask distributed (embedded LocalCluster unless ``scheduler`` is given).
    scheduler : str, optional
        Address of an existing Dask scheduler (implies ``dask``).
    reuse : bool
        Register each scan once and share it, and group runs of one target into one
        task (heat source reused). ``False`` is the benchmark's baseline.
    progress : bool or callable
        Show tqdm progress bars on stderr, or call ``progress(phase, done, total)``.

    Returns
    -------
    BatchResult

    Raises
    ------
    FusplanInputError
        Bad batch-level input (nothing to run, malformed manifest, bad sweep,
        unreachable scheduler). Bad scans and protocols become error rows.
    """
    started = time.perf_counter()
    out = Path(out_dir).resolve()  # workers (and Dask workers on a shared file system) get absolute paths
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise FusplanInputError(f"--workers must be >= 1 (got {workers})")
    runs = plan_runs(inputs, protocol=protocol, sides=sides, sweeps=sweeps, overrides=overrides,
                     phantom=phantom, atlas=atlas, target=target)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    todo: list[tuple[RunSpec, Any]] = []
    n_resumed = 0
    for spec, protocol_obj in runs:
        report = out / RUNS_DIR / f"{spec.run_id}.json"
        if spec.problem is not None:
            rows[spec.run_id] = error_row(spec, spec.problem)
        elif report.is_file() and (doc := _read_report(report)) is not None:
            rows[spec.run_id] = summary_row(doc)
            n_resumed += 1
        else:
            todo.append((spec, protocol_obj))

    engine = _make_engine(workers, dask or bool(scheduler), scheduler) if todo else None
    registration_s = 0.0
    try:
        if todo:
            t0 = time.perf_counter()
            failed_scans = _register_all(engine, out, todo, reuse, progress)
            registration_s = time.perf_counter() - t0
            for spec, _ in todo:
                if spec.scan_path is not None and spec.scan_path in failed_scans:
                    rows[spec.run_id] = error_row(spec, failed_scans[spec.scan_path])
            todo = [(s, p) for s, p in todo if s.run_id not in rows]
            _simulate_all(engine, out, todo, reuse, workers, progress, rows)
    except BaseException:  # interrupted (Ctrl-C) or broken: drop queued tasks, keep finished reports
        if engine is not None:
            engine.close(cancel=True)
            engine = None
        raise
    finally:
        if engine is not None:
            engine.close()
    summary_path = write_summary(list(rows.values()), out / SUMMARY_NAME)
    ordered = sort_rows(rows.values())
    return BatchResult(out_dir=out, summary_path=summary_path, rows=ordered, n_runs=len(ordered),
                       n_failed=sum(r["status"] == "error" for r in ordered), n_resumed=n_resumed,
                       elapsed_s=time.perf_counter() - started, registration_s=registration_s)


def _make_engine(workers: int, use_dask: bool, scheduler: str | None):
    if use_dask:
        return _Dask(scheduler, workers)
    return _Inline() if workers == 1 else _Pool(workers)


def _read_report(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("run"), dict) else None


def _register_all(engine, out: Path, todo, reuse: bool, progress) -> dict[str, str]:
    """Phase 1: register each distinct (scan, atlas) once; returns scan_path -> error."""
    if not reuse:
        return {}
    jobs: dict[tuple, set] = {}
    for spec, _ in todo:
        if spec.scan_path is None:
            continue
        if spec.scan_hash is None:
            continue  # unreadable file: phase 2 reports the load error
        if registration_cache_path(out, spec.scan_hash, spec.atlas).is_file():
            continue
        jobs.setdefault((spec.scan_path, spec.scan_hash, spec.atlas), None)
    failed: dict[str, str] = {}
    if not jobs:
        return failed
    bar = _progress_bar(progress, "register", len(jobs), "scan")
    futures = {}
    for scan_path, scan_hash, atlas in sorted(jobs):
        cache = str(registration_cache_path(out, scan_hash, atlas))
        futures[engine.submit(register_scan, scan_path, atlas, cache)] = scan_path
    try:
        for future in engine.as_completed(futures):
            scan_path = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - a crashed worker fails that scan only
                outcome = {"ok": False, "error": _one_line(error)}
            if not outcome["ok"]:
                failed[scan_path] = outcome["error"]
            bar.update(1)
    finally:
        bar.close()
    return failed


def group_tasks(todo: Sequence[tuple[RunSpec, Any]], workers: int, reuse: bool = True) -> list[list]:
    """Split runs into tasks; runs of one target and protocol geometry share a task.

    Runs are grouped by (scan, side, atlas, target, transducer, grid) so the
    worker loads the scan once and the heat source is computed once; groups are
    cut into chunks of at most :data:`MAX_RUNS_PER_TASK` runs, and small enough
    that every worker gets about two tasks. Without ``reuse`` each run is a task.
    """
    if not reuse:
        return [[item] for item in todo]
    groups: dict[tuple, list] = {}
    for spec, protocol in todo:
        geometry = (repr(protocol.transducer), protocol.spacing_mm, protocol.extent_mm)
        groups.setdefault((spec.scan_path or "", spec.side or "", spec.atlas, spec.target, geometry),
                          []).append((spec, protocol))
    size = max(1, min(MAX_RUNS_PER_TASK, math.ceil(len(todo) / (2 * workers))))
    tasks = []
    for key in sorted(groups, key=repr):
        group = groups[key]
        n_chunks = math.ceil(len(group) / size)
        per = math.ceil(len(group) / n_chunks)
        tasks.extend(group[i:i + per] for i in range(0, len(group), per))
    return tasks


def _simulate_all(engine, out: Path, todo, reuse: bool, workers: int, progress, rows: dict) -> None:
    if not todo:
        return
    tasks = group_tasks(todo, workers, reuse)
    bar = _progress_bar(progress, "simulate", len(todo), "run")
    futures = {}
    for task in tasks:
        spec = task[0][0]
        registration = (str(registration_cache_path(out, spec.scan_hash, spec.atlas))
                        if spec.scan_path and spec.scan_hash else None)
        futures[engine.submit(simulate_runs, str(out), task, registration, reuse)] = task
    try:
        for future in engine.as_completed(futures):
            task = futures[future]
            try:
                task_rows = future.result()
            except Exception as error:  # noqa: BLE001 - e.g. a worker killed by the OS
                task_rows = [error_row(spec, _one_line(error)) for spec, _ in task]
            for row in task_rows:
                rows[row["run_id"]] = row
            bar.update(len(task))
    finally:
        bar.close()


class _CallbackBar:
    def __init__(self, callback, phase: str, total: int):
        self.callback, self.phase, self.total, self.done = callback, phase, total, 0
        callback(phase, 0, total)

    def update(self, n: int):
        self.done += n
        self.callback(self.phase, self.done, self.total)

    def close(self):
        pass


def _progress_bar(progress, phase: str, total: int, unit: str):
    if callable(progress):
        return _CallbackBar(progress, phase, total)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=phase, unit=unit, file=sys.stderr, disable=not progress, dynamic_ncols=True)


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``fusplan batch`` arguments to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = """\
manifest (CSV, one row per scan; paths relative to the manifest's folder):
  scan,side,protocol,peak_c,skull_transmission
  sub-01/t1.nii.gz,both,protocols/clt.yaml,56,
  sub-02/t1.nii.gz,left,clt,,0.25
  ,,clt,58,                      (empty scan: the tissue phantom)
Columns other than scan/side/protocol/atlas/target are protocol overrides
(an empty cell means none). Outputs: runs/<run_id>.json, summary.csv.
Exit status: 0 all runs succeeded, 1 some failed (see summary.csv), 2 bad input.

examples:
  fusplan batch manifest.csv --out results
  fusplan batch scans/ --side both --sweep peak_c=54,56,58 --out results
  fusplan batch --phantom --sweep peak_c=54,56 --sweep skull_transmission=0.15,0.25 --out sweep
"""
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="CSV manifest(s), scan files, folders of scans or quoted glob patterns")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (runs/<run_id>.json, summary.csv, registration/); "
                             "runs already there are skipped (resume)")
    parser.add_argument("--protocol", metavar="PROTOCOL", default=None,
                        help="protocol file or bundled name for scans and rows without one (default: clt)")
    parser.add_argument("--side", default="left", choices=("left", "right", "both"),
                        help="side(s) for scans and rows without a side cell (default: left)")
    parser.add_argument("--phantom", action="store_true",
                        help="no scans: simulate the protocol in the homogeneous phantom")
    parser.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="sweep a protocol parameter (repeatable: cartesian product), e.g. peak_c=54,56,58")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_",
                        help="override a protocol parameter for every run (repeatable)")
    parser.add_argument("--atlas", default="morel", help="atlas for targeting (default: morel)")
    parser.add_argument("--target", default="CLp", help="target rule for targeting (default: CLp)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help=f"worker processes (default: min(2, CPUs) = {default_workers()}); 1 runs in-process")
    parser.add_argument("--dask", action="store_true",
                        help="run on Dask distributed (an embedded LocalCluster unless --scheduler is given)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --dask)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.add_argument("--json", action="store_true", help="print a JSON summary of the batch on stdout")
    return parser


def run_batch_from_args(args: argparse.Namespace) -> int:
    """Run ``fusplan batch`` from parsed arguments; returns the exit status.

    0 when every run succeeded, 1 when any run failed (the count goes to stderr).
    Bad batch-level input raises :class:`FusplanInputError` (the CLI exits 2).
    """
    from .protocol import parse_override

    sweeps = [parse_sweep(text) for text in args.sweep]
    overrides = dict(parse_override(text) for text in args.set_)
    try:
        result = run_batch(args.inputs, args.out, protocol=args.protocol, sides=args.side, sweeps=sweeps,
                           overrides=overrides, phantom=args.phantom, atlas=args.atlas, target=args.target,
                           workers=args.workers, dask=args.dask, scheduler=args.scheduler,
                           progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"batch interrupted: finished runs are kept in {args.out}; run the same command again to resume",
              file=sys.stderr)
        raise
    done = result.n_runs - result.n_failed
    message = (f"{done} of {result.n_runs} runs succeeded ({result.n_resumed} resumed) in "
               f"{result.elapsed_s:.1f} s; summary: {result.summary_path}")
    if args.json:
        print(json.dumps({"out_dir": str(result.out_dir), "summary": str(result.summary_path),
                          "runs": result.n_runs, "failed": result.n_failed, "resumed": result.n_resumed,
                          "rows": result.rows}, indent=2))
    print(message, file=sys.stderr)
    if result.n_failed:
        failed = [r for r in result.rows if r["status"] == "error"]
        for row in failed[:5]:
            print(f"  {row['run_id']}: {row['error']}", file=sys.stderr)
        print(f"{result.n_failed} run(s) failed", file=sys.stderr)
        return 1
    return 0
