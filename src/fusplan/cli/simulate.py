"""``fusplan simulate PROTOCOL``: run a protocol in the tissue phantom or on a scan.

Also holds the simulate-and-report step ``plan`` shares.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import FusplanInputError
from .assessment import add_assessment_options, checked_inputs, run_assessment
from .common import (add_ct_options, add_output_options, add_target_options, check_targeting,
                     load_ct_input, locate, print_json, progress_bar, register_ct, report_skull_warnings,
                     save_ct_registration, save_registration)

HELP = "run a protocol in the tissue phantom or on a scan"


def add_parser(commands) -> None:
    parser = commands.add_parser("simulate", help=HELP, description=HELP)
    parser.add_argument("protocol", metavar="PROTOCOL",
                        help="protocol file, or a bundled protocol by name (clt, vim; any case)")
    parser.add_argument("--scan", type=Path, metavar="SCAN", help="plan on this scan (default: tissue phantom)")
    add_target_options(parser, "side(s) to plan with --scan (ignored in the phantom)")
    add_ct_options(parser)
    add_output_options(parser, "write the JSON report, NIfTI maps and summary")
    add_assessment_options(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..io import load_scan

    protocol, measurements = checked_inputs(args, args.protocol)
    scan = found = skull_ct = ct_registration = None
    if args.ct is not None and not args.scan:
        raise FusplanInputError("--ct needs --scan (the CT is registered to the scan)")
    if args.scan:
        check_targeting(args)
        ct = load_ct_input(args)
        scan = load_scan(args.scan)
        found = locate(scan, args)
        if ct is not None:
            skull_ct, ct_registration = register_ct(ct, scan, args)
    return simulate_and_report(protocol, scan, found, args, measurements, skull_ct=skull_ct,
                               ct_registration=ct_registration)


def simulate_and_report(protocol, scan, found, args, measurements=None, *, skull_ct=None,
                        ct_registration=None) -> int:
    """Simulate, calibrate and add the band when asked, write ``--out``, print the summary or ``--json``.

    ``--out`` gets the report, the maps and the registrations; ``measurements``
    (``--thermometry``, already checked) and ``--uncertainty`` add the assessment
    (:func:`fusplan.assessment.assess`). Skull warnings (population skull, a head that
    does not fit the array) go to stderr, one line each.
    """
    from ..planner import simulate
    from ..report import summary_text, write_report

    update, close = progress_bar("simulating", enabled=not args.no_progress)
    try:
        result = simulate(protocol, scan=scan, targets=found, progress=update, skull_ct=skull_ct)
    finally:
        close()
    report_skull_warnings(result)
    run_assessment(result, measurements, args)
    if args.out:
        write_report(result, args.out, scan=scan)
        if found is not None:
            save_registration(found, args.out)
        if ct_registration is not None:
            save_ct_registration(ct_registration, args.out)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(summary_text(result))
    if args.out:
        print(f"written to {args.out}", file=sys.stderr)
    return 0
