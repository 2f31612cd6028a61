"""``fusplan demo``: the teaching demo of the staged procedure on the sample scan (:mod:`fusplan.demo`)."""
from __future__ import annotations

from pathlib import Path

from ..vocabulary import DEFAULT_SIDE, SIDES
from .common import add_preset_option, check_out_dir, output_dir, progress_bar

HELP = "teaching demo of the staged procedure on the sample scan"
DEFAULT_FRAMES = 90


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help=HELP, description=HELP)
    parser.add_argument("--out", default="fusplan-demo", type=output_dir, metavar="DIR",
                        help="output folder (default: ./fusplan-demo)")
    parser.add_argument("--scan", default=None, type=Path, metavar="SCAN",
                        help="head scan to plan on (default: the bundled Colin27 sample)")
    parser.add_argument("--protocol", default=None, metavar="PROTOCOL",
                        help="protocol file or bundled name (default: the bundled staged CLT protocol)")
    parser.add_argument("--side", default=DEFAULT_SIDE, choices=SIDES,
                        help=f"side to plan (default: {DEFAULT_SIDE}; the demo plans one side)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="N",
                        help=f"frames of the animation, 2-400 (default: {DEFAULT_FRAMES})")
    parser.add_argument("--registration", type=Path, default=None, metavar="FILE",
                        help="reuse a saved registration (.npz written by target/plan --out) of this scan")
    add_preset_option(parser)
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                        help="no progress bar on stderr")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..demo import run_demo
    from ..errors import FusplanInputError

    if not 2 <= args.frames <= 400:
        raise FusplanInputError(f"--frames must be between 2 and 400 (got {args.frames})")
    check_out_dir(args.out)
    update, close = progress_bar("demo", enabled=not args.no_progress)
    try:
        written = run_demo(args.out, scan_path=args.scan, protocol=args.protocol, side=args.side,
                           animation_frames=args.frames, registration=args.registration,
                           registration_settings=args.registration_preset, progress=update)
    finally:
        close()
    for name in ("demo.md", "focus.png", "stages.png", "procedure.gif"):
        if name in written:
            print(written[name])
    return 0
