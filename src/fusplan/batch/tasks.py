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
from typing import Any, Sequence

from ..errors import FusplanInputError
from ..io import atomic_output
from .runs import RunSpec, slug
from .summary import error_row, summary_row

RUNS_DIR = "runs"
REGISTRATION_DIR = "registration"


def registration_cache_path(out_dir: str | os.PathLike, scan_hash: str, atlas: str) -> Path:
    """Where the registration of a scan (by content hash) to an atlas is cached."""
    return Path(out_dir) / REGISTRATION_DIR / f"{scan_hash[:16]}-{slug(atlas)}.npz"


def register_scan(scan_path: str, atlas: str, cache_path: str) -> dict:
    """Phase 1 task: register the atlas template to one scan and cache the result.

    Returns ``{"ok": bool, "error": str | None, "elapsed_s": float}``; never raises
    for bad input, so one bad scan does not stop the batch.
    """
    start = time.perf_counter()
    try:
        from ..io import load_scan
        from ..registration import register

        register(load_scan(scan_path), atlas).save(cache_path)  # save() is atomic
        return {"ok": True, "error": None, "elapsed_s": time.perf_counter() - start}
    except Exception as error:  # noqa: BLE001 - every failure becomes an error row
        return {"ok": False, "error": one_line(error), "elapsed_s": time.perf_counter() - start}


def simulate_runs(out_dir: str, items: Sequence[tuple[RunSpec, Any]], registration_path: str | None,
                  reuse: bool = True, threads: int | None = None) -> list[dict]:
    """Phase 2 task: simulate runs that share a scan and side; write their reports.

    The scan is loaded and its targets located once for the whole task (from the
    cached registration when ``registration_path`` exists); the planner's
    heat-source cache serves every run whose focus and geometry match. With
    ``reuse=False`` every run registers its scan afresh and the heat-source cache
    is cleared between runs (the benchmark's baseline).

    Returns one summary row per run (failures become error rows).
    """
    from ..planner import clear_cache
    from ..report import dumps_json

    rows = []
    context: dict[str, Any] = {}
    for spec, protocol in items:
        start = time.perf_counter()
        try:
            if not reuse:
                context = {}
                clear_cache()
            doc = _simulate_one(spec, protocol, registration_path if reuse else None, context, threads, out_dir)
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
                  threads: int | None, out_dir: str | None = None) -> dict:
    from ..planner import simulate

    if spec.scan_path is None:
        return simulate(protocol, threads=threads).to_dict()
    ct = None
    if spec.ct_path:  # cheap check first: the CT loads as a head CT in HU, before any registration
        from ..skull import load_ct

        ct = context["ct"] if context.get("ct_path") == spec.ct_path else load_ct(spec.ct_path)
    if "scan" not in context:
        from ..io import load_scan
        from ..registration import load_registration
        from ..targeting import locate_targets

        scan = load_scan(spec.scan_path)
        registration = None
        if registration_path and Path(registration_path).is_file():
            try:
                registration = load_registration(Path(registration_path), scan=scan)
            except FusplanInputError:  # damaged or foreign cache: register afresh (locate_targets does)
                registration = None
        context["scan"] = scan
        context["targets"] = locate_targets(
            scan, atlas=spec.atlas, sides=(spec.side,), target=spec.target, registration=registration)
    if ct is not None and context.get("ct_path") != spec.ct_path:
        context.update(ct_path=spec.ct_path, ct=ct, skull_ct=_registered_ct(ct, context["scan"], out_dir))
    return simulate(protocol, scan=context["scan"], targets=context["targets"], sides=(spec.side,),
                    threads=threads, skull_ct=context["skull_ct"] if ct is not None else None).to_dict()


def _registered_ct(ct, scan, out_dir: str | None):
    """``ct`` registered to ``scan``: the cached CT -> MR registration
    (``<out>/registration/ct-<CT hash>-<scan hash>.npz``) when it matches, else a new one, cached."""
    from ..registration import scan_fingerprint
    from ..skull import load_ct_registration, register_ct_to_mr
    from ..skull.registration import ct_fingerprint

    cache = None
    if out_dir is not None:
        cache = Path(out_dir) / REGISTRATION_DIR / f"ct-{ct_fingerprint(ct)[:16]}-{scan_fingerprint(scan)[:16]}.npz"
        if cache.is_file():
            try:
                return load_ct_registration(cache, ct=ct, scan=scan).apply(ct)
            except FusplanInputError:  # damaged or foreign cache: register afresh, as for the atlas
                pass
    registration = register_ct_to_mr(ct, scan)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        registration.save(cache)
    return registration.apply(ct)


def one_line(error: BaseException) -> str:
    """An exception as one line of text (input errors without their class name)."""
    text = " ".join(str(error).split())
    if isinstance(error, FusplanInputError):
        return text or "bad input"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
