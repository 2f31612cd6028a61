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
    <out>/registration/...       cached registrations, one per (scan, atlas); one that fails
                                 validation is registered again
    <out>/.fusplan.lock          held while the batch runs: a second batch on the same
                                 folder is refused (exit 2, naming the first one's pid)

Temporary files of a killed earlier batch are removed when the next one starts, and
local worker processes end with the batch process (even after SIGKILL). Scans and
protocols that are not regular files (FIFOs, devices) are refused before being read.

Modules: :mod:`~fusplan.batch.inputs` (sweeps, manifests, scan lists),
:mod:`~fusplan.batch.runs` (inputs -> :class:`RunSpec`), :mod:`~fusplan.batch.tasks`
(worker tasks), :mod:`~fusplan.batch.summary` (``summary.csv``),
:mod:`~fusplan.batch.engines` (in-process, process pool, Dask) and
:mod:`~fusplan.batch.driver` (:func:`run_batch`).
"""
from .driver import MAX_RUNS_PER_TASK, SUMMARY_NAME, BatchResult, group_tasks, run_batch
from .engines import default_workers, threads_per_worker
from .inputs import ALIASES, collect_scans, expand_sweeps, parse_sweep, read_manifest
from .runs import RUN_COLUMNS, RunSpec, parse_sides, plan_runs
from .summary import error_row, row_values, sort_rows, summary_row, write_summary
from .tasks import REGISTRATION_DIR, RUNS_DIR, register_scan, registration_cache_path, simulate_runs

__all__ = [
    "ALIASES", "MAX_RUNS_PER_TASK", "REGISTRATION_DIR", "RUNS_DIR", "RUN_COLUMNS", "SUMMARY_NAME",
    "BatchResult", "RunSpec", "collect_scans", "default_workers", "error_row", "expand_sweeps", "group_tasks",
    "parse_sides", "parse_sweep", "plan_runs", "read_manifest", "register_scan", "registration_cache_path",
    "row_values", "run_batch", "simulate_runs", "sort_rows", "summary_row", "threads_per_worker", "write_summary",
]
