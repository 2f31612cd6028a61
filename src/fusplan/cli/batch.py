"""``fusplan batch``: many scans, protocols and parameter sweeps (see :mod:`fusplan.batch`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..vocabulary import DEFAULT_ATLAS, DEFAULT_TARGET
from .common import add_preset_option, add_side_option, check_out_dir, output_dir

HELP = "many scans, protocols and parameter sweeps"
#: Failed runs listed on stderr before "and N more".
LISTED_FAILURES = 5

EPILOG = """\
manifest (CSV, one row per scan; paths relative to the manifest's folder):
  scan,side,protocol,ct,peak_c,skull_transmission
  sub-01/t1.nii.gz,both,protocols/clt.yaml,sub-01/ct.nii.gz,56,
  sub-02/t1.nii.gz,left,clt,,,0.25
  ,,clt,,58,                     (empty scan: the tissue phantom)
ct: the head CT (NIfTI or DICOM folder; empty: the population skull).
Columns other than scan/side/protocol/atlas/target/ct are protocol overrides
(an empty cell means none). Outputs: runs/<run_id>.json, summary.csv.
Exit status: 0 all runs succeeded, 1 some failed (see summary.csv), 2 bad input
(a missing scan or folder, a sweep key the protocol does not know: nothing runs)
or --out in use by another batch (one batch per output folder at a time).

examples:
  fusplan batch manifest.csv --out results
  fusplan batch scans/ --side both --sweep peak_c=54,56,58 --out results
  fusplan batch --phantom --sweep peak_c=54,56 --sweep skull_transmission=0.15,0.25 --out sweep
"""


def add_parser(commands) -> None:
    parser = commands.add_parser("batch", help=HELP, description=HELP, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="CSV manifest(s), scan files, folders of scans or quoted glob patterns")
    parser.add_argument("--out", required=True, type=output_dir, metavar="DIR",
                        help="output folder (runs/<run_id>.json, summary.csv, registration/); "
                             "runs already there are skipped (resume)")
    parser.add_argument("--protocol", metavar="PROTOCOL", default=None,
                        help="protocol file or bundled name for scans and rows without one (default: clt)")
    add_side_option(parser, "side(s) for scans and rows without a side cell")
    parser.add_argument("--phantom", action="store_true",
                        help="no scans: simulate the protocol in the homogeneous phantom")
    parser.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="sweep a protocol parameter (repeatable: cartesian product), e.g. peak_c=54,56,58")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_",
                        help="override a protocol parameter for every run (repeatable)")
    parser.add_argument("--atlas", default=DEFAULT_ATLAS, help=f"atlas for targeting (default: {DEFAULT_ATLAS})")
    parser.add_argument("--target", default=DEFAULT_TARGET, help=f"target rule for targeting (default: {DEFAULT_TARGET})")
    add_preset_option(parser)
    parser.add_argument("--ct", type=Path, default=None, metavar="CT",
                        help="head CT (NIfTI or DICOM folder, HU) of the one scan given; manifests: a ct column")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: min(2, CPUs)); 1 runs in-process")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads per worker for the numerical work (default: CPUs / workers)")
    parser.add_argument("--dask", action="store_true",
                        help="run on Dask distributed (an embedded LocalCluster unless --scheduler is given)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --dask)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary of the batch on stdout (numbers as numbers)")
    parser.set_defaults(run=run)


def run(args) -> int:
    """0 when every run succeeded, 1 when any run failed (listed on stderr).

    Mistakes in the command raise :class:`FusplanInputError` before any run (exit 2).
    """
    from ..batch import parse_sweep, row_values, run_batch
    from ..protocol import parse_override

    check_out_dir(args.out)
    sweeps = [parse_sweep(text) for text in args.sweep]
    overrides = dict(parse_override(text) for text in args.set_)
    try:
        result = run_batch(args.inputs, args.out, protocol=args.protocol, sides=args.side, sweeps=sweeps,
                           overrides=overrides, phantom=args.phantom, atlas=args.atlas, target=args.target, ct=args.ct,
                           registration_preset=args.registration_preset, workers=args.workers, threads=args.threads,
                           dask=args.dask, scheduler=args.scheduler, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"batch interrupted: finished runs are kept in {args.out}; run the same command again to resume",
              file=sys.stderr)
        raise
    done = result.n_runs - result.n_failed
    if args.json:
        print(json.dumps({"out_dir": str(result.out_dir), "summary": str(result.summary_path),
                          "runs": result.n_runs, "failed": result.n_failed, "resumed": result.n_resumed,
                          "rows": [row_values(row) for row in result.rows]}, indent=2))
    print(f"{done} of {result.n_runs} runs succeeded ({result.n_resumed} resumed) in {result.elapsed_s:.1f} s; "
          f"summary: {result.summary_path}", file=sys.stderr)
    if not result.n_failed:
        return 0
    failed = [r for r in result.rows if r["status"] == "error"]
    for row in failed[:LISTED_FAILURES]:
        print(f"  {row['run_id']}: {row['error']}", file=sys.stderr)
    if len(failed) > LISTED_FAILURES:
        print(f"  and {len(failed) - LISTED_FAILURES} more (see {result.summary_path})", file=sys.stderr)
    print(f"{result.n_failed} run(s) failed", file=sys.stderr)
    return 1
