"""``fusplan plan SCAN``: target + simulate + report on a scan."""
from __future__ import annotations

from pathlib import Path

from .assessment import add_assessment_options, checked_inputs
from ..vocabulary import REGISTRATION_FILE
from .common import add_ct_options, add_output_options, add_target_options, prepare
from .simulate import simulate_and_report

HELP = "target + simulate + report on a scan"


def add_parser(commands) -> None:
    parser = commands.add_parser("plan", help=HELP, description=HELP)
    parser.add_argument("scan", type=Path, metavar="SCAN")
    parser.add_argument("--protocol", default="clt", metavar="PROTOCOL",
                        help="protocol file or bundled name (clt, vim; any case; default: clt)")
    add_target_options(parser)
    add_ct_options(parser)
    add_output_options(parser, f"write the JSON report, NIfTI maps, summary and {REGISTRATION_FILE}")
    add_assessment_options(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    protocol, measurements = checked_inputs(args, args.protocol)
    return simulate_and_report(protocol, prepare(args, args.scan), args, measurements)
