"""The ``fusplan`` command line: one module per command, as nibabel's ``cmdline``.

Exit status: 0 success; 2 bad input or usage (one plain line on stderr naming the
file and the problem, no traceback); 1 unexpected internal error (and ``batch``
when a run failed). ``--json`` prints exactly one JSON document on stdout;
progress and logs go to stderr. Heavy modules are imported inside the commands so
``fusplan --help`` is quick and never imports napari or Qt.

Modules: :mod:`~fusplan.cli.common` (shared options, progress, checks) and one per
command: ``info``, ``target``, ``simulate``, ``plan``, ``batch``, ``demo``.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import FusplanInputError
from . import batch, demo, info, plan, simulate, target
from .common import Parser

COMMANDS = (info, target, simulate, plan, batch, demo)


def build_parser() -> Parser:
    """The ``fusplan`` argument parser (every command's options, nothing imported lazily)."""
    parser = Parser(prog="fusplan", description="MR-guided focused ultrasound thalamotomy planner.")
    parser.add_argument("--version", action="version", version=f"fusplan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (plain ``fusplan`` prints the commands)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
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


__all__ = ["build_parser", "main"]
