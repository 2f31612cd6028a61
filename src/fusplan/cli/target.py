"""``fusplan target SCAN``: register the atlas and locate the target(s)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..vocabulary import REGISTRATION_FILE
from .common import (add_ct_options, add_output_options, add_target_options, check_out_dir, prepare, print_json,
                     save_ct_registration, save_registration)

HELP = "register the atlas and locate the target(s)"


def add_parser(commands) -> None:
    parser = commands.add_parser("target", help=HELP, description=HELP)
    parser.add_argument("scan", type=Path, metavar="SCAN")
    add_target_options(parser)
    add_ct_options(parser)
    add_output_options(parser, f"write targets.json, atlas labels (NIfTI), the QC figure and {REGISTRATION_FILE}")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..report import write_target_outputs

    check_out_dir(args.out)
    subject = prepare(args, args.scan)
    found, ct_registration = subject.targets, subject.ct_registration
    if args.out:
        write_target_outputs(found, subject.scan, args.out)
        save_registration(found, args.out)
        if ct_registration is not None:
            save_ct_registration(ct_registration, args.out)
    document = found.to_dict()
    if ct_registration is not None:
        document["ct_registration"] = ct_registration.to_dict()
    if args.json:
        print_json(document)
        return 0
    for target in document["targets"]:
        ras = ", ".join(f"{v:.1f}" for v in target["ras_mm"])
        acpc = ", ".join(f"{v:.1f}" for v in target["acpc_mm"])
        print(f"{target['name']} {target.get('side') or ''}: RAS ({ras}) mm, AC-PC ({acpc}) mm")
    for name, position in document["landmarks"].items():
        print(f"{name}: RAS ({', '.join(f'{v:.1f}' for v in position)}) mm")
    if ct_registration is not None:
        print(f"CT -> MR registration: mutual information {ct_registration.metric:.3f} "
              f"({ct_registration.time_s:.1f} s)", file=sys.stderr)
    if args.out:
        print(f"written to {args.out}", file=sys.stderr)
    return 0
