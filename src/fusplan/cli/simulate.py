"""``fusplan simulate PROTOCOL``: run a protocol in the tissue phantom or on a scan.

Also holds the simulate-and-report step ``plan`` shares.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import FusplanInputError
from .assessment import add_assessment_options, checked_inputs, run_assessment
from .common import (add_ct_options, add_output_options, add_target_options, prepare, print_json, progress_bar,
                     report_skull_warnings, save_ct_registration, save_registration)

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
    protocol, measurements = checked_inputs(args, args.protocol)
    if args.ct is not None and not args.scan:
        raise FusplanInputError("--ct needs --scan (the CT is registered to the scan)")
    return simulate_and_report(protocol, prepare(args, args.scan) if args.scan else None, args, measurements)


def simulate_and_report(protocol, subject, args, measurements=None) -> int:
    """Simulate ``subject`` (a :class:`fusplan.subject.Subject`; None: the phantom), calibrate and add
    the band when asked, write ``--out``, print the summary or ``--json``.

    ``--out`` gets the report, the maps and the registrations; ``measurements``
    (``--thermometry``, already checked) and ``--uncertainty`` add the assessment
    (:func:`fusplan.assessment.assess`). Skull warnings (population skull, a head that
    does not fit the array) go to stderr, one line each.
    """
    from ..planner import simulate
    from ..report import summary_text, write_report

    on_scan = {} if subject is None else {"scan": subject.scan, "targets": subject.targets,
                                          "skull_ct": subject.skull_ct}
    update, close = progress_bar("simulating", enabled=not args.no_progress)
    try:
        result = simulate(protocol, progress=update, **on_scan)
    finally:
        close()
    report_skull_warnings(result)
    run_assessment(result, measurements, args)
    if args.out:
        write_report(result, args.out, scan=on_scan.get("scan"))
        if subject is not None:
            save_registration(subject.targets, args.out)
            if subject.ct_registration is not None:
                save_ct_registration(subject.ct_registration, args.out)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(summary_text(result))
    if args.out:
        print(f"written to {args.out}", file=sys.stderr)
    return 0
