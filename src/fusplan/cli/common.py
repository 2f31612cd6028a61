"""What the ``fusplan`` commands share: the parser class, options, progress, output checks.

Nothing here imports numerical modules at import time, so ``fusplan --help`` stays
quick and never imports napari or Qt.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..errors import FusplanInputError

#: ``--side`` choices of every command and what they mean (:data:`fusplan.targeting.SIDE_CHOICES`,
#: repeated here so that ``fusplan --help`` imports no numerical module; a test keeps them equal).
SIDE_CHOICES = {"left": ("left",), "right": ("right",), "both": ("left", "right")}
#: The one default for ``--side`` (target, simulate, plan, batch, demo).
DEFAULT_SIDE = "left"
#: :data:`fusplan.atlas.ATLASES`, repeated for the same reason.
ATLASES = ("morel", "najdenovska")
#: The registration written by ``target --out`` and ``plan --out`` (reuse with ``--registration``).
REGISTRATION_NAME = "registration.npz"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one short line and exit status 2."""

    def error(self, message: str) -> None:  # argparse's own error prints usage + message, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def progress_bar(description: str, enabled: bool = True) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """A tqdm bar on stderr driven by ``callback(fraction, message)``; returns (callback, close).

    stdout stays clean (``--json`` prints only the document there).
    """
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, file=sys.stderr, unit="%", leave=False, disable=not enabled,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def update(fraction: float, message: str = "") -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return update, bar.close


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
    group.add_argument("--atlas", default="morel", choices=list(ATLASES),
                       help="atlas to register (default: morel, which has CL as its own label)")
    add_side_option(group, side_help)
    group.add_argument("--target", default="CLp",
                       help="CLp (default), or any label of the atlas by abbreviation or name (e.g. CM, VLpv)")
    group.add_argument("--acpc", type=triple, metavar="X,Y,Z",
                       help="target in AC-PC mm instead of an atlas label (x is mirrored for the left side)")
    group.add_argument("--ac", type=triple, metavar="X,Y,Z", help="override AC position (scanner RAS mm)")
    group.add_argument("--pc", type=triple, metavar="X,Y,Z", help="override PC position (scanner RAS mm)")
    group.add_argument("--registration", type=Path, metavar="FILE",
                       help=f"reuse a saved registration ({REGISTRATION_NAME} written by target/plan --out) "
                            "instead of registering again")


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


def check_targeting(args) -> None:
    """Cheap targeting checks, before any registration: AC/PC pairs, the target label, the registration file.

    The target label is checked against the chosen atlas's label table (CLp needs
    a CL label), and a ``--registration`` file must exist and be readable.
    """
    from ..atlas import load_atlas

    if (args.ac is None) != (args.pc is None):
        raise FusplanInputError("--ac and --pc must be given together")
    if args.acpc is None:
        atlas = load_atlas(args.atlas)
        if args.target == "CLp":
            if not any(label.abbreviation == "CL" for label in atlas.label_table):
                raise FusplanInputError(f"atlas {atlas.name!r} has no central lateral (CL) label, so no CLp target; "
                                        "give --target LABEL or --acpc X,Y,Z")
        else:
            for side in SIDE_CHOICES[args.side]:
                atlas.find_labels(args.target, side)  # raises naming the known labels


def locate(scan, args):
    """Register (or reuse ``--registration``) and place the targets, with a progress bar."""
    from ..registration import load_registration
    from ..targeting import locate_targets

    registration = load_registration(args.registration, scan=scan) if args.registration else None
    update, close = progress_bar("targeting", enabled=not args.no_progress)
    try:
        return locate_targets(scan, atlas=args.atlas, sides=SIDE_CHOICES[args.side], target=args.target,
                              acpc_mm=args.acpc, ac_mm=args.ac, pc_mm=args.pc, registration=registration,
                              progress=update)
    finally:
        close()


def save_registration(found, out: Path) -> Path:
    """Write the registration of a targeting result to ``out/registration.npz`` (atomic)."""
    out.mkdir(parents=True, exist_ok=True)
    return found.registration.save(out / REGISTRATION_NAME)


# ------------------------------------------------------------------------------- skull CT

#: The CT -> MR registration written next to ``registration.npz`` (reuse with ``--ct-registration``).
CT_REGISTRATION_NAME = "ct_registration.npz"


def add_ct_options(parser: argparse.ArgumentParser) -> None:
    """``--ct CT`` and ``--ct-registration FILE`` of ``target``, ``simulate`` and ``plan``."""
    group = parser.add_argument_group("skull")
    group.add_argument("--ct", type=Path, metavar="CT",
                       help="the patient's head CT in HU (NIfTI file or DICOM series folder), rigidly registered to "
                            "the scan; without it a plan on a scan uses the population skull template")
    group.add_argument("--ct-registration", type=Path, metavar="FILE",
                       help=f"reuse a saved CT -> MR registration ({CT_REGISTRATION_NAME}, written with --out; "
                            "also reused from the --out folder when it matches the CT and the scan)")


def load_ct_input(args):
    """Cheap CT checks before any registration: the ``--ct`` file loads as a head CT in HU,
    and a saved CT registration to reuse is an intact CT registration file (of this CT
    when given with ``--ct-registration``).

    Returns the :class:`fusplan.skull.SkullCT` (None without ``--ct``).
    """
    if args.ct is None:
        if args.ct_registration is not None:
            raise FusplanInputError("--ct-registration needs --ct")
        return None
    from ..skull import load_ct, load_ct_registration

    ct = load_ct(args.ct)
    path = _saved_ct_registration(args)
    if path is not None:
        load_ct_registration(path, ct=ct if args.ct_registration is not None else None)
    return ct


def _saved_ct_registration(args) -> Path | None:
    """``--ct-registration``, else ``--out/ct_registration.npz`` when it exists, else None."""
    if args.ct_registration is not None:
        return args.ct_registration
    if args.out is not None and (args.out / CT_REGISTRATION_NAME).exists():
        return args.out / CT_REGISTRATION_NAME
    return None


def register_ct(ct, scan, args):
    """The CT made samplable in the scan's world: a saved registration when it matches
    (``--ct-registration``, which must match, else ``--out/ct_registration.npz``),
    otherwise a new rigid mutual-information registration. A damaged or foreign saved
    file is refused naming it. Returns ``(registered_ct, registration)``."""
    from ..skull import load_ct_registration, register_ct_to_mr

    path = _saved_ct_registration(args)
    if args.ct_registration is not None:
        saved = load_ct_registration(path, ct=ct, scan=scan)
        return saved.apply(ct), saved
    if path is not None:
        saved = load_ct_registration(path)
        if saved.matches(ct, scan):
            return saved.apply(ct), saved
    update, close = progress_bar("CT registration", enabled=not args.no_progress)
    try:
        registration = register_ct_to_mr(ct, scan, progress=update)
    finally:
        close()
    return registration.apply(ct), registration


def save_ct_registration(registration, out: Path) -> Path:
    """Write the CT -> MR registration to ``out/ct_registration.npz`` (atomic)."""
    out.mkdir(parents=True, exist_ok=True)
    return registration.save(out / CT_REGISTRATION_NAME)


def report_skull_warnings(result) -> None:
    """One line on stderr per skull warning of a simulation (population skull, head fit)."""
    for side, s in result.sides.items():
        if s.skull is None:
            continue
        for warning in s.skull.warnings:
            print(f"fusplan: warning{f' ({side})' if side else ''}: {warning}", file=sys.stderr)
