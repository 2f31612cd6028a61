"""Batch throughput: runs per minute at 1 and 2 workers, and the speed-up from reuse.

Everything is measured in the same process run, so the ratios are meaningful on a
shared machine even when absolute times are not.

1. Throughput: the bundled CLT protocol in the tissue phantom, a sweep of treatment
   peak temperatures, ``workers=1`` (in-process) and ``workers=2`` (process pool).
2. Reuse: the same sweep on the bundled sample head, with reuse (one registration
   per scan cached on disk, runs of one target in one task so the heat source is
   computed once) and without (every run registers the scan and computes its heat
   source afresh), both at ``workers=1``. Skipped with ``--no-scan``.

    python benchmarks/bench_batch.py            # ~5-10 min on 2 cores
    python benchmarks/bench_batch.py --quick    # coarser grid, fewer points
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

from fusplan import planner
from fusplan.atlas import sample_scan_path
from fusplan.batch import run_batch


def _timed(label: str, **kwargs) -> dict:
    planner.clear_cache()  # the in-process engine would otherwise inherit heat sources from a previous case
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_batch(out_dir=out, progress=False, **kwargs)
        elapsed = time.perf_counter() - start
    if result.n_failed:
        raise SystemExit(f"{label}: {result.n_failed} runs failed: {[r['error'] for r in result.rows if r['error']]}")
    row = {"case": label, "runs": result.n_runs, "elapsed_s": round(elapsed, 2),
           "runs_per_min": round(60 * result.n_runs / elapsed, 2), "registration_s": round(result.registration_s, 2)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 mm grid and 2-4 sweep points")
    parser.add_argument("--no-scan", action="store_true", help="skip the registration-reuse case")
    parser.add_argument("--no-phantom", action="store_true", help="skip the phantom throughput cases")
    args = parser.parse_args()
    peaks = [54, 55, 56, 57] if not args.quick else [55, 57]
    overrides = {"grid.spacing_mm": 1.0} if args.quick else {}
    common = dict(protocol="clt_single", sweeps={"peak_c": peaks}, overrides=overrides)

    summary = {}
    if not args.no_phantom:
        one = _timed("phantom, 1 worker", phantom=True, workers=1, **common)
        two = _timed("phantom, 2 workers", phantom=True, workers=2, **common)
        phantom_cold = _timed("phantom, 1 worker, no reuse", phantom=True, workers=1, reuse=False, **common)
        summary.update({
            "runs_per_min_1_worker": one["runs_per_min"],
            "runs_per_min_2_workers": two["runs_per_min"],
            "parallel_speedup": round(two["runs_per_min"] / one["runs_per_min"], 2),
            "field_reuse_speedup_phantom": round(phantom_cold["elapsed_s"] / one["elapsed_s"], 2),
        })
    if not args.no_scan:
        scan = str(sample_scan_path("ch2"))
        scans = dict(inputs=[scan], sides="left", **common)
        warm = _timed("scan, 1 worker, reuse", workers=1, **scans)
        cold = _timed("scan, 1 worker, no reuse", workers=1, reuse=False, **scans)
        summary["registration_and_field_reuse_speedup_scan"] = round(cold["elapsed_s"] / warm["elapsed_s"], 2)
        summary["scan_runs_per_min_with_reuse"] = warm["runs_per_min"]
        summary["scan_runs_per_min_without_reuse"] = cold["runs_per_min"]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
