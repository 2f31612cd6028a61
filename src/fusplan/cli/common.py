"""What the ``fusplan`` commands share: the parser class, options, progress, output checks.

Nothing here imports numerical modules at import time, so ``fusplan --help`` stays
quick and never imports napari or Qt.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Callable

from ..errors import FusplanInputError
from ..vocabulary import (ATLASES, CT_REGISTRATION_FILE, DEFAULT_ATLAS, DEFAULT_REGISTRATION_PRESET, DEFAULT_SIDE,
                          DEFAULT_TARGET, REGISTRATION_FILE, REGISTRATION_PRESETS, SIDE_CHOICES)


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one short line and exit status 2."""

    def error(self, message: str) -> None:  # argparse's own error prints usage + message, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def progress_bar(description: str, enabled: bool = True) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """A tqdm bar on stderr driven by ``callback(fraction, message)``; returns (callback, close).

    stdout stays clean (``--json`` prints only the document there). When stderr is not
    a terminal (a log file, CI) it writes a few plain lines instead of redrawing a bar
    (:class:`fusplan.progress.LineProgress`). Nothing is shown before the first report, so
    a step that fails its cheap checks first prints only its error line.
    """
    from ..progress import LineProgress, is_terminal

    if enabled and not is_terminal(sys.stderr):
        lines = LineProgress(description, sys.stderr)
        return lines, lines.close
    bars = []

    def update(fraction: float, message: str = "") -> None:
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(total=100, desc=description, file=sys.stderr, unit="%", leave=False,
                             disable=not enabled,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"))
        bar = bars[0]
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def close() -> None:
        for bar in bars:
            bar.close()

    return update, close


def print_json(document) -> None:
    """Print exactly one JSON document on stdout."""
    from ..report import dumps_json

    text = dumps_json(document)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def triple(text: str) -> tuple[float, float, float]:
    """argparse type for ``X,Y,Z`` in mm."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z in mm, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z in mm, got {text!r}")
    return values


def add_side_option(parser: argparse.ArgumentParser, what: str = "side(s) to plan") -> None:
    """``--side left|right|both`` with the one default, :data:`DEFAULT_SIDE`."""
    parser.add_argument("--side", default=DEFAULT_SIDE, choices=list(SIDE_CHOICES),
                        help=f"{what}: left, right or both (default: {DEFAULT_SIDE})")


def add_target_options(parser: argparse.ArgumentParser, side_help: str = "side(s) to target") -> None:
    """Atlas, side, target and registration options of ``target``, ``simulate`` and ``plan``."""
    group = parser.add_argument_group("targeting")
    group.add_argument("--atlas", default=DEFAULT_ATLAS, choices=list(ATLASES),
                       help=f"atlas to register (default: {DEFAULT_ATLAS}, which has CL as its own label)")
    add_side_option(group, side_help)
    group.add_argument("--target", default=DEFAULT_TARGET,
                       help=f"{DEFAULT_TARGET} (default), or any label of the atlas by abbreviation or name "
                            "(e.g. CM, VLpv)")
    group.add_argument("--acpc", type=triple, metavar="X,Y,Z",
                       help="target in AC-PC mm instead of an atlas label (x is mirrored for the left side)")
    group.add_argument("--ac", type=triple, metavar="X,Y,Z", help="override AC position (scanner RAS mm)")
    group.add_argument("--pc", type=triple, metavar="X,Y,Z", help="override PC position (scanner RAS mm)")
    group.add_argument("--registration", type=Path, metavar="FILE",
                       help=f"reuse a saved registration ({REGISTRATION_FILE} written by target/plan --out) "
                            "instead of registering again")
    add_preset_option(group)


def add_preset_option(parser) -> None:
    """``--registration-preset standard|fast|affine`` (:data:`fusplan.vocabulary.REGISTRATION_PRESETS`)."""
    parser.add_argument("--registration-preset", default=DEFAULT_REGISTRATION_PRESET, choices=REGISTRATION_PRESETS,
                        help=f"registration preset when registering: {DEFAULT_REGISTRATION_PRESET} (default), fast, "
                             "or affine (quickest, least accurate)")


def add_output_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    """``--out DIR``, ``--json`` and ``--no-progress``."""
    parser.add_argument("--out", type=output_dir, metavar="DIR", help=out_help)
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def output_dir(text: str) -> Path:
    """argparse type of ``--out``: the raw text is checked (``--out ""`` is refused, not the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError('empty output folder name (give a folder, e.g. --out results)')
    return Path(text)


def check_out_dir(path: Path | None) -> None:
    """Refuse an ``--out`` that cannot be an output folder, before any work (:func:`fusplan.outputs.check_output_dir`)."""
    from ..outputs import check_output_dir

    if path is not None:
        check_output_dir(path)


def target_request(args):
    """The :class:`fusplan.subject.TargetRequest` of the targeting options."""
    from ..subject import TargetRequest

    return TargetRequest(atlas=args.atlas, sides=SIDE_CHOICES[args.side], target=args.target, acpc_mm=args.acpc,
                         ac_mm=args.ac, pc_mm=args.pc, registration=args.registration)


def ct_request(args):
    """The :class:`fusplan.subject.CtRequest` of ``--ct`` (None without it): ``--ct-registration``
    must match; ``--out/ct_registration.npz`` is reused when it matches the CT and the scan."""
    from ..subject import CtRequest

    if args.ct is None:
        if args.ct_registration is not None:
            raise FusplanInputError("--ct-registration needs --ct")
        return None
    reuse = () if args.out is None else (args.out / CT_REGISTRATION_FILE,)
    return CtRequest(args.ct, registration=args.ct_registration, reuse=reuse)


def prepare(args, scan: Path):
    """:func:`fusplan.subject.prepare_subject` of the command's options, with a progress bar."""
    from ..execution import ExecutionOptions
    from ..subject import prepare_subject

    request, ct = target_request(args), ct_request(args)
    update, close = progress_bar("targeting", enabled=not args.no_progress)
    try:
        options = ExecutionOptions(progress=update, registration_preset=args.registration_preset)
        return prepare_subject(scan, request, ct, options)
    finally:
        close()


def save_registration(found, out: Path) -> Path:
    """Write the registration of a targeting result to ``out/registration.npz`` (atomic)."""
    out.mkdir(parents=True, exist_ok=True)
    return found.registration.save(out / REGISTRATION_FILE)


# ------------------------------------------------------------------------------- skull CT

def add_ct_options(parser: argparse.ArgumentParser) -> None:
    """``--ct CT`` and ``--ct-registration FILE`` of ``target``, ``simulate`` and ``plan``."""
    group = parser.add_argument_group("skull")
    group.add_argument("--ct", type=Path, metavar="CT",
                       help="the patient's head CT in HU (NIfTI file or DICOM series folder), rigidly registered to "
                            "the scan; without it a plan on a scan uses the population skull template")
    group.add_argument("--ct-registration", type=Path, metavar="FILE",
                       help=f"reuse a saved CT -> MR registration ({CT_REGISTRATION_FILE}, written with --out; "
                            "also reused from the --out folder when it matches the CT and the scan)")


def save_ct_registration(registration, out: Path) -> Path:
    """Write the CT -> MR registration to ``out/ct_registration.npz`` (atomic)."""
    out.mkdir(parents=True, exist_ok=True)
    return registration.save(out / CT_REGISTRATION_FILE)


def report_skull_warnings(result) -> None:
    """One line on stderr per skull warning of a simulation (population skull, head fit)."""
    for side, s in result.sides.items():
        if s.skull is None:
            continue
        for warning in s.skull.warnings:
            print(f"fusplan: warning{f' ({side})' if side else ''}: {warning}", file=sys.stderr)
