"""Worker tasks of a batch: register one scan, simulate a group of runs.

Both are plain functions of picklable arguments (sent to worker processes or Dask
workers), never raise for bad input (a failure becomes an error row), and write
every file atomically. ``threads`` is the number of threads each task may use for
its numerical work (workers x threads should not exceed the cores).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from ..errors import FusplanInputError
from ..io import atomic_output
from ..vocabulary import DEFAULT_REGISTRATION_PRESET
from .runs import RunSpec, slug
from .summary import error_row, summary_row

RUNS_DIR = "runs"
REGISTRATION_DIR = "registration"


def registration_cache_path(out_dir: str | os.PathLike, scan_hash: str, atlas: str,
                            preset: str = DEFAULT_REGISTRATION_PRESET) -> Path:
    """Where the registration of a scan (by content hash) to an atlas is cached (a preset other
    than the standard one is named in the file name)."""
    suffix = "" if preset == DEFAULT_REGISTRATION_PRESET else f"-{slug(preset)}"
    return Path(out_dir) / REGISTRATION_DIR / f"{scan_hash[:16]}-{slug(atlas)}{suffix}.npz"


def register_scan(scan_path: str, atlas: str, cache_path: str, preset: str = DEFAULT_REGISTRATION_PRESET) -> dict:
    """Phase 1 task: register the atlas template to one scan and cache the result.

    Returns ``{"ok": bool, "error": str | None, "elapsed_s": float}``; never raises
    for bad input, so one bad scan does not stop the batch.
    """
    start = time.perf_counter()
    try:
        from ..io import load_scan
        from ..registration import register

        register(load_scan(scan_path), atlas, settings=preset).save(cache_path)  # save() is atomic
        return {"ok": True, "error": None, "elapsed_s": time.perf_counter() - start}
    except Exception as error:  # noqa: BLE001 - every failure becomes an error row
        return {"ok": False, "error": one_line(error), "elapsed_s": time.perf_counter() - start}


def simulate_runs(out_dir: str, items: Sequence[tuple[RunSpec, Any]], registration_path: str | None,
                  reuse: bool = True, threads: int | None = None) -> list[dict]:
    """Phase 2 task: simulate runs that share a scan and side; write their reports.

    The scan is loaded and its targets located once for the whole task (from the
    cached registration when ``registration_path`` exists); the task's heat-source
    cache (:class:`~fusplan.execution.HeatSourceCache`) serves every run whose focus and
    geometry match. With ``reuse=False`` every run registers its scan afresh and
    computes its own heat sources (the benchmark's baseline).

    Returns one summary row per run (failures become error rows).
    """
    from ..execution import ExecutionOptions, HeatSourceCache
    from ..report import dumps_json

    rows = []
    context: dict[str, Any] = {}
    execution = ExecutionOptions(threads=threads, heat_sources=HeatSourceCache() if reuse else None)
    for spec, protocol in items:
        start = time.perf_counter()
        try:
            if not reuse:
                context = {}
            doc = _simulate_one(spec, protocol, registration_path if reuse else None, context, execution, out_dir)
            doc["run"] = {**spec.describe(), "status": "ok", "elapsed_s": round(time.perf_counter() - start, 3)}
            text = dumps_json(doc)
            with atomic_output(Path(out_dir) / RUNS_DIR / f"{spec.run_id}.json") as tmp:
                Path(tmp).write_text(text, encoding="utf-8")
            # The row comes from the written text, so a resumed run gives the very same row.
            rows.append(summary_row(json.loads(text)))
        except Exception as error:  # noqa: BLE001 - every failure becomes an error row
            rows.append(error_row(spec, one_line(error)))
    return rows


def _simulate_one(spec: RunSpec, protocol, registration_path: str | None, context: dict,
                  execution, out_dir: str | None = None) -> dict:
    """Simulate one run with ``execution`` (threads, the task's heat-source cache); its subject
    (:func:`fusplan.subject.prepare_subject`) is prepared once per scan, side, atlas, target and CT
    and kept in ``context`` for the next run of the task."""
    from dataclasses import replace

    from ..planner import simulate
    from ..subject import CtRequest, TargetRequest, prepare_subject

    if spec.scan_path is None:
        return simulate(protocol, execution=execution).to_dict()
    key = (spec.scan_path, spec.side, spec.atlas, spec.target, spec.ct_path)
    if context.get("key") != key:
        request = TargetRequest(atlas=spec.atlas, sides=(spec.side,), target=spec.target,
                                registration_cache=registration_path)
        ct = None
        if spec.ct_path:
            ct = CtRequest(spec.ct_path, cache_dir=None if out_dir is None else Path(out_dir) / REGISTRATION_DIR)
        context.clear()
        options = replace(execution, registration_preset=spec.registration_preset)
        context.update(key=key, subject=prepare_subject(spec.scan_path, request, ct, options))
    subject = context["subject"]
    return simulate(protocol, scan=subject.scan, targets=subject.targets, sides=(spec.side,), execution=execution,
                    skull_ct=subject.skull_ct).to_dict()


def one_line(error: BaseException) -> str:
    """An exception as one line of text (input errors without their class name)."""
    text = " ".join(str(error).split())
    if isinstance(error, FusplanInputError):
        return text or "bad input"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
