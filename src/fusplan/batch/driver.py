"""``run_batch``: expand the inputs, resume, register each scan once, simulate, summarise."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from ..errors import FusplanInputError
from .engines import check_scheduler_address, default_workers, make_engine, threads_per_worker
from .runs import RunSpec, plan_runs
from .summary import error_row, sort_rows, summary_row, write_summary
from ..outputs import clean_stale_writes, lock_output_dir, remove_if_unused
from ..protocol.limits import MAX_WORKERS
from ..vocabulary import DEFAULT_ATLAS, DEFAULT_REGISTRATION_PRESET, DEFAULT_TARGET
from .tasks import REGISTRATION_DIR, RUNS_DIR, one_line, register_scan, registration_cache_path, simulate_runs

SUMMARY_NAME = "summary.csv"
#: Upper bound on runs per task: larger tasks reuse more, smaller ones balance better.
MAX_RUNS_PER_TASK = 8

ProgressCallback = Callable[[float, str], None]


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


def run_batch(
    inputs: Sequence[str | os.PathLike] = (),
    out_dir: str | os.PathLike = "fusplan-batch",
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
    workers: int | None = None,
    threads: int | None = None,
    dask: bool = False,
    scheduler: str | None = None,
    reuse: bool = True,
    progress: bool | ProgressCallback = True,
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
        plus the aliases in :data:`fusplan.batch.ALIASES`).
    overrides : mapping, optional
        Overrides applied to every run. Precedence when a key is given twice:
        manifest cell < ``overrides`` < sweep point.
    phantom : bool
        Simulate in the homogeneous phantom (no scans).
    atlas, target : str
        Defaults for targeting (manifest columns may override them).
    ct : path-like, optional
        The subject's head CT (NIfTI or DICOM folder) for a batch of exactly one scan;
        a manifest gives one per row in its ``ct`` column.
    registration_preset : str
        Atlas registration preset (:data:`fusplan.vocabulary.REGISTRATION_PRESETS`) of every run.
    workers : int, optional
        Local worker processes (default :func:`default_workers`); 1 runs in this
        process. With Dask, the number of LocalCluster workers.
    threads : int, optional
        Threads per task for the numerical work (default: cores / workers), passed
        to the library calls.
    dask : bool
        Use Dask distributed (embedded LocalCluster unless ``scheduler`` is given).
    scheduler : str, optional
        Address of an existing Dask scheduler (implies ``dask``).
    reuse : bool
        Register each scan once and share it, and group runs of one target into one
        task (heat source reused). ``False`` is the benchmark's baseline.
    progress : bool or callable(fraction, message)
        Show tqdm progress bars on stderr, or report the fraction of the batch done.

    Returns
    -------
    BatchResult

    Raises
    ------
    FusplanInputError
        Mistakes in the command, all listed (see :func:`fusplan.batch.plan_runs`),
        an unreachable scheduler, or ``out_dir`` in use by another batch (it is
        locked for the whole batch: :func:`fusplan.outputs.lock_output_dir`). Bad
        scans and manifest rows become error rows.
    """
    started = time.perf_counter()
    out = Path(out_dir).resolve()  # workers (and Dask workers on a shared file system) get absolute paths
    workers = default_workers() if workers is None else int(workers)
    if not 1 <= workers <= MAX_WORKERS:
        raise FusplanInputError(f"--workers must be 1-{MAX_WORKERS} (got {workers})")
    if threads is not None and int(threads) < 1:
        raise FusplanInputError(f"--threads must be >= 1 (got {threads})")
    if scheduler is not None:
        check_scheduler_address(scheduler)
    if out.exists() and not out.is_dir():
        raise FusplanInputError(f"{out}: exists and is not a directory")
    threads = threads_per_worker(workers) if threads is None else int(threads)
    runs = plan_runs(inputs, protocol=protocol, sides=sides, sweeps=sweeps, overrides=overrides,
                     phantom=phantom, atlas=atlas, target=target, ct=ct,
                     registration_preset=registration_preset)
    created = not out.exists()
    try:
        with lock_output_dir(out, what="batch"):  # a second batch on the same --out is refused, not interleaved
            for folder in (out, out / RUNS_DIR, out / REGISTRATION_DIR):
                clean_stale_writes(folder)  # temporary files of a killed earlier batch
            rows, n_resumed, registration_s = _run_locked(out, runs, workers, threads, dask, scheduler, reuse,
                                                          progress)
            summary_path = write_summary(list(rows.values()), out / SUMMARY_NAME)
    except BaseException:
        if created:  # e.g. an unreachable scheduler: leave no folder holding only the lock behind
            remove_if_unused(out)
        raise
    ordered = sort_rows(rows.values())
    return BatchResult(out_dir=out, summary_path=summary_path, rows=ordered, n_runs=len(ordered),
                       n_failed=sum(r["status"] == "error" for r in ordered), n_resumed=n_resumed,
                       elapsed_s=time.perf_counter() - started, registration_s=registration_s)


def _run_locked(out: Path, runs, workers: int, threads: int, dask: bool, scheduler: str | None, reuse: bool,
                progress) -> tuple[dict, int, float]:
    """Resume, register and simulate (the caller holds the lock); returns (rows, n_resumed, registration_s)."""
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

    engine = make_engine(workers, dask, scheduler) if todo else None
    registration_s = 0.0
    try:
        if todo:
            jobs = _registration_jobs(out, todo) if reuse else []
            meter = _Progress(progress, len(jobs), len(todo))
            try:
                t0 = time.perf_counter()
                failed_scans = _register_all(engine, out, jobs, meter)
                registration_s = time.perf_counter() - t0
                for spec, _ in todo:
                    if spec.scan_path is not None and spec.scan_path in failed_scans:
                        rows[spec.run_id] = error_row(spec, failed_scans[spec.scan_path])
                        meter.simulated(1)
                todo = [(s, p) for s, p in todo if s.run_id not in rows]
                _simulate_all(engine, out, todo, reuse, workers, threads, meter, rows)
            finally:
                meter.close()
    except BaseException:  # interrupted (Ctrl-C) or broken: drop queued tasks, keep finished reports
        if engine is not None:
            engine.close(cancel=True)
            engine = None
        raise
    finally:
        if engine is not None:
            engine.close()
    return rows, n_resumed, registration_s


def _read_report(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("run"), dict) else None


def _registration_jobs(out: Path, todo) -> list[tuple[str, str, str, str]]:
    """Distinct (scan_path, scan_hash, atlas, preset) without a cached registration, sorted."""
    jobs = set()
    for spec, _ in todo:
        if spec.scan_path is None or spec.scan_hash is None:
            continue  # the phantom, or an unreadable file (phase 2 reports the load error)
        if not _valid_cache(registration_cache_path(out, spec.scan_hash, spec.atlas, spec.registration_preset)):
            jobs.add((spec.scan_path, spec.scan_hash, spec.atlas, spec.registration_preset))
    return sorted(jobs)


def _valid_cache(path: Path) -> bool:
    """True when ``path`` holds a registration that passes validation (a damaged one is redone)."""
    from ..registration import load_registration

    if not path.is_file():
        return False
    try:
        load_registration(path)
    except FusplanInputError:
        return False
    return True


def _register_all(engine, out: Path, jobs, meter: _Progress) -> dict[str, str]:
    """Phase 1: register each distinct (scan, atlas) once; returns scan_path -> error."""
    failed: dict[str, str] = {}
    futures = {}
    for scan_path, scan_hash, atlas, preset in jobs:
        cache = str(registration_cache_path(out, scan_hash, atlas, preset))
        futures[engine.submit(register_scan, scan_path, atlas, cache, preset)] = scan_path
    for future in engine.as_completed(futures):
        scan_path = futures[future]
        try:
            outcome = future.result()
        except Exception as error:  # noqa: BLE001 - a crashed worker fails that scan only
            outcome = {"ok": False, "error": one_line(error)}
        if not outcome["ok"]:
            failed[scan_path] = outcome["error"]
        meter.registered(1)
    return failed


def group_tasks(todo: Sequence[tuple[RunSpec, Any]], workers: int, reuse: bool = True) -> list[list]:
    """Split runs into tasks; runs of one target and protocol geometry share a task.

    Runs are grouped by (scan, side, atlas, target, CT, transducer, grid) so the
    worker loads the scan once and the heat source is computed once; groups are
    cut into chunks of at most :data:`MAX_RUNS_PER_TASK` runs, and small enough
    that every worker gets about two tasks. Without ``reuse`` each run is a task.
    """
    if not reuse:
        return [[item] for item in todo]
    groups: dict[tuple, list] = {}
    for spec, protocol in todo:
        geometry = (repr(protocol.transducer), protocol.spacing_mm, protocol.extent_mm)
        groups.setdefault((spec.scan_path or "", spec.side or "", spec.atlas, spec.target, spec.ct_path or "", geometry),
                          []).append((spec, protocol))
    size = max(1, min(MAX_RUNS_PER_TASK, math.ceil(len(todo) / (2 * workers))))
    tasks = []
    for key in sorted(groups, key=repr):
        group = groups[key]
        n_chunks = math.ceil(len(group) / size)
        per = math.ceil(len(group) / n_chunks)
        tasks.extend(group[i:i + per] for i in range(0, len(group), per))
    return tasks


def _simulate_all(engine, out: Path, todo, reuse: bool, workers: int, threads: int, meter: _Progress,
                  rows: dict) -> None:
    futures = {}
    for task in group_tasks(todo, workers, reuse):
        spec = task[0][0]
        registration = (str(registration_cache_path(out, spec.scan_hash, spec.atlas, spec.registration_preset))
                        if spec.scan_path and spec.scan_hash else None)
        futures[engine.submit(simulate_runs, str(out), task, registration, reuse, threads)] = task
    for future in engine.as_completed(futures):
        task = futures[future]
        try:
            task_rows = future.result()
        except Exception as error:  # noqa: BLE001 - e.g. a worker killed by the OS
            task_rows = [error_row(spec, one_line(error)) for spec, _ in task]
        for row in task_rows:
            rows[row["run_id"]] = row
        meter.simulated(len(task))


class _Progress:
    """Batch progress: tqdm bars on stderr (one per phase; plain lines when stderr is not a terminal),
    a ``(fraction, message)`` callback, or nothing.

    The fraction counts registrations and runs alike (a registration takes about
    as long as a few runs; the bar stays monotonic either way).
    """

    def __init__(self, progress: bool | ProgressCallback, n_registrations: int, n_runs: int):
        self.n_registrations, self.n_runs = n_registrations, n_runs
        self.done_registrations = self.done_runs = 0
        self.callback = progress if callable(progress) else None
        self.bars = {}
        if self.callback is None and progress:
            from tqdm.auto import tqdm

            from ..progress import LineProgress, is_terminal

            terminal = is_terminal(sys.stderr)  # else a log: a few plain lines, no redrawn bars
            for phase, total, unit in (("register", n_registrations, "scan"), ("simulate", n_runs, "run")):
                if total:
                    self.bars[phase] = (tqdm(total=total, desc=phase, unit=unit, file=sys.stderr, dynamic_ncols=True)
                                        if terminal else LineProgress(phase, sys.stderr, total=total, unit=f"{unit}s"))
        self._report("starting")

    def registered(self, n: int) -> None:
        self.done_registrations += n
        self._advance("register", n, f"registered {self.done_registrations} of {self.n_registrations} scans")

    def simulated(self, n: int) -> None:
        self.done_runs += n
        self._advance("simulate", n, f"simulated {self.done_runs} of {self.n_runs} runs")

    def _advance(self, phase: str, n: int, message: str) -> None:
        if phase in self.bars:
            self.bars[phase].update(n)
        self._report(message)

    def _report(self, message: str) -> None:
        if self.callback is not None:
            total = self.n_registrations + self.n_runs
            self.callback((self.done_registrations + self.done_runs) / total if total else 1.0, message)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
