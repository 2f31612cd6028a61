"""The ``fusplan`` command line.

Exit status: 0 success; 2 bad input or usage (one plain line on stderr naming the
file and the problem, no traceback); 1 unexpected internal error. ``--json``
prints exactly one JSON document on stdout; progress and logs go to stderr.
Heavy modules are imported inside the commands so ``fusplan --help`` is quick
and never imports napari or Qt.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import FusplanInputError
from .textfile import display_path

SIDES = {"left": ("left",), "right": ("right",), "both": ("left", "right")}


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one short line and exit status 2."""

    def error(self, message: str) -> None:  # argparse's own error prints usage + message, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _progress_bar(description: str) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """A tqdm bar on stderr driven by ``callback(fraction, message)``; returns (callback, close)."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, file=sys.stderr, unit="%", leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
               disable=None)

    def update(fraction: float, message: str = "") -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return update, bar.close


def _print_json(document) -> None:
    from .report import dumps_json

    text = dumps_json(document)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _triple(text: str) -> tuple[float, float, float]:
    """argparse type for ``X,Y,Z`` in mm."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z in mm, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z in mm, got {text!r}")
    return values


# --- info ---------------------------------------------------------------------------------------

def scan_info(scan) -> dict:
    """Facts about a loaded scan, as printed by ``fusplan info``."""
    data = scan.data
    return {
        "file": display_path(scan.path) if scan.path else None,
        "shape": list(scan.shape),
        "voxel_size_mm": [round(float(v), 4) for v in scan.spacing_mm],
        "orientation": scan.orientation,
        "affine_source": scan.affine_source,
        "affine": [[round(float(v), 4) for v in row] for row in scan.affine],
        "intensity_range": [float(data.min()), float(data.max())],
        "warnings": list(scan.warnings),
    }


def _cmd_info(args) -> int:
    from .io import load_scan

    info = scan_info(load_scan(args.scan))
    if args.json:
        _print_json(info)
        return 0
    print(f"file:        {info['file']}")
    print(f"shape:       {' x '.join(map(str, info['shape']))}")
    print(f"voxel size:  {' x '.join(f'{v:g}' for v in info['voxel_size_mm'])} mm")
    print(f"orientation: {info['orientation']} (affine from {info['affine_source']})")
    print("affine (voxel -> RAS mm):")
    for row in info["affine"]:
        print("   " + " ".join(f"{v:10.4f}" for v in row))
    print(f"intensity:   {info['intensity_range'][0]:g} .. {info['intensity_range'][1]:g}")
    for warning in info["warnings"]:
        print(f"warning:     {warning}")
    return 0


# --- target -------------------------------------------------------------------------------------

def _add_target_options(parser: argparse.ArgumentParser, sides: Sequence[str]) -> None:
    parser.add_argument("--atlas", default="morel", choices=["morel", "najdenovska"],
                        help="atlas to register (default: morel, which has CL as its own label)")
    parser.add_argument("--side", default=sides[0], choices=list(sides), help=f"side(s) to target (default: {sides[0]})")
    parser.add_argument("--target", default="CLp",
                        help="CLp (default), or any atlas label by abbreviation or name (e.g. CM, VLpv)")
    parser.add_argument("--acpc", type=_triple, metavar="X,Y,Z",
                        help="target in AC-PC mm instead of an atlas label (x is mirrored for the left side)")
    parser.add_argument("--ac", type=_triple, metavar="X,Y,Z", help="override AC position (scanner RAS mm)")
    parser.add_argument("--pc", type=_triple, metavar="X,Y,Z", help="override PC position (scanner RAS mm)")
    parser.add_argument("--registration", type=Path, metavar="FILE",
                        help="reuse a saved registration (.npz written by --out) instead of registering again")


def _locate(scan, args):
    from .registration import load_registration
    from .targeting import locate_targets

    if (args.ac is None) != (args.pc is None):
        raise FusplanInputError("--ac and --pc must be given together")
    registration = load_registration(args.registration, scan=scan) if args.registration else None
    update, close = _progress_bar("registering atlas")
    try:
        return locate_targets(
            scan,
            atlas=args.atlas,
            sides=SIDES[args.side],
            target=args.target,
            acpc_mm=args.acpc,
            ac_mm=args.ac,
            pc_mm=args.pc,
            registration=registration,
            progress=update,
        )
    finally:
        close()


def _cmd_target(args) -> int:
    from .io import load_scan
    from .targeting import write_target_outputs

    scan = load_scan(args.scan)
    found = _locate(scan, args)
    if args.out:
        write_target_outputs(found, scan, args.out)
    document = found.to_dict()
    if args.json:
        _print_json(document)
        return 0
    for target in document["targets"]:
        ras = ", ".join(f"{v:.1f}" for v in target["ras_mm"])
        acpc = ", ".join(f"{v:.1f}" for v in target["acpc_mm"])
        print(f"{target['name']} {target.get('side') or ''}: RAS ({ras}) mm, AC-PC ({acpc}) mm")
    for name, position in document["landmarks"].items():
        print(f"{name}: RAS ({', '.join(f'{v:.1f}' for v in position)}) mm")
    if args.out:
        print(f"written to {args.out}", file=sys.stderr)
    return 0


# --- simulate and plan ----------------------------------------------------------------------------

def _run_simulation(protocol, scan, found, args) -> int:
    from .planner import simulate
    from .report import write_report

    update, close = _progress_bar("simulating")
    try:
        result = simulate(protocol, scan=scan, targets=found, progress=update)
    finally:
        close()
    if args.out:
        write_report(result, args.out, scan=scan)
    document = result.to_dict()
    if args.json:
        _print_json(document)
        return 0
    from .report import summary_text

    print(summary_text(result))
    if args.out:
        print(f"written to {args.out}", file=sys.stderr)
    return 0


def _cmd_simulate(args) -> int:
    from .io import load_scan
    from .protocol import load_protocol

    protocol = load_protocol(args.protocol)
    scan = found = None
    if args.scan:
        scan = load_scan(args.scan)
        found = _locate(scan, args)
    return _run_simulation(protocol, scan, found, args)


def _cmd_plan(args) -> int:
    from .io import load_scan
    from .protocol import default_protocol_path, load_protocol

    protocol = load_protocol(args.protocol or default_protocol_path("clt"))
    scan = load_scan(args.scan)
    found = _locate(scan, args)
    return _run_simulation(protocol, scan, found, args)


# --- batch and demo -----------------------------------------------------------------------------

def _cmd_batch(args) -> int:
    from .batch import run_batch_from_args

    return run_batch_from_args(args)


def _cmd_demo(args) -> int:
    from .demo import run_demo_from_args

    return run_demo_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``fusplan`` argument parser."""
    parser = _Parser(prog="fusplan", description="MR-guided focused ultrasound thalamotomy planner.")
    parser.add_argument("--version", action="version", version=f"fusplan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    info = commands.add_parser("info", help="describe a scan: shape, voxel size, orientation, affine")
    info.add_argument("scan", type=Path, metavar="SCAN")
    info.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    info.set_defaults(run=_cmd_info)

    target = commands.add_parser("target", help="register the atlas and locate the target(s)")
    target.add_argument("scan", type=Path, metavar="SCAN")
    _add_target_options(target, ("both", "left", "right"))
    target.add_argument("--out", type=Path, metavar="DIR", help="write target JSON, labels NIfTI and QC figure")
    target.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    target.set_defaults(run=_cmd_target)

    simulate = commands.add_parser("simulate", help="run a protocol in the phantom or on a scan")
    simulate.add_argument("protocol", type=Path, metavar="PROTOCOL")
    simulate.add_argument("--scan", type=Path, metavar="SCAN", help="plan on this scan (default: tissue phantom)")
    _add_target_options(simulate, ("left", "right"))
    simulate.add_argument("--out", type=Path, metavar="DIR", help="write JSON report, NIfTI maps and summary")
    simulate.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    simulate.set_defaults(run=_cmd_simulate)

    plan = commands.add_parser("plan", help="target + simulate + report on a scan")
    plan.add_argument("scan", type=Path, metavar="SCAN")
    plan.add_argument("--protocol", type=Path, metavar="PROTOCOL", help="protocol file (default: bundled CLT)")
    _add_target_options(plan, ("left", "right", "both"))
    plan.add_argument("--out", type=Path, metavar="DIR", help="write JSON report, NIfTI maps and summary")
    plan.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    plan.set_defaults(run=_cmd_plan)

    batch = commands.add_parser("batch", help="many scans, protocols and parameter sweeps")
    batch.set_defaults(run=_cmd_batch)
    demo = commands.add_parser("demo", help="teaching demo of the staged procedure on the sample scan")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _add_lazy_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Give ``batch``/``demo`` their options (their modules are imported only when used)."""
    command = next((word for word in argv if not word.startswith("-")), None)
    if command not in ("batch", "demo"):
        return
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    module = __import__(f"fusplan.{command}", fromlist=["add_arguments"])
    module.add_arguments(subparsers.choices[command])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    _add_lazy_arguments(parser, argv)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except FusplanInputError as error:
        print(f"fusplan: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fusplan: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an internal bug: say so plainly, traceback only on request
        if os.environ.get("FUSPLAN_DEBUG"):
            raise
        print(f"fusplan: internal error: {type(error).__name__}: {error} "
              "(set FUSPLAN_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
