"""Options ``--thermometry``, ``--uncertainty``, ``--workers`` and ``--dask`` of ``plan`` and ``simulate``."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import progress_bar


def add_assessment_options(parser: argparse.ArgumentParser) -> None:
    """Calibration on measured thermometry and the uncertainty band."""
    group = parser.add_argument_group("calibration and uncertainty")
    group.add_argument("--thermometry", type=Path, metavar="FILE",
                       help="measured thermometry of the low-energy sonications (YAML/JSON, see the contract): "
                            "calibrate the focus model on it and predict the treatment")
    group.add_argument("--uncertainty", type=_samples, default=0, metavar="N",
                       help="samples of the lesion's uncertainty band (0: none, the default; 200 take ~20 s)")
    group.add_argument("--workers", type=_workers, default=1, metavar="N",
                       help="worker processes for the uncertainty band (default: 1, in this process)")
    group.add_argument("--dask", action="store_true", help="run the uncertainty band on a local Dask cluster")


def _samples(text: str) -> int:
    from ..protocol.limits import MAX_UNCERTAINTY_SAMPLES

    value = _integer(text)
    if value != 0 and not 2 <= value <= MAX_UNCERTAINTY_SAMPLES:
        raise argparse.ArgumentTypeError(f"needs 0 (no band) or 2-{MAX_UNCERTAINTY_SAMPLES} samples, got {value}")
    return value


def _workers(text: str) -> int:
    from ..protocol.limits import MAX_WORKERS

    value = _integer(text)
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"needs 1-{MAX_WORKERS} workers, got {value}")
    return value


def _integer(text: str) -> int:
    if len(text) > 12:  # int() of a 5000-digit text is slow and its value absurd
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:20]!r}...")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def checked_inputs(args, protocol_name):
    """``--out``, the protocol and ``--thermometry`` checked, cheapest first: ``(protocol, measurements)``."""
    from ..protocol import load_protocol
    from .common import check_out_dir

    check_out_dir(args.out)
    protocol = load_protocol(protocol_name)
    return protocol, load_thermometry(args, protocol)


def load_thermometry(args, protocol):
    """Read and check ``--thermometry`` (cheap: before any registration or simulation)."""
    from ..measured import load_measurements

    if args.thermometry is None:
        return None
    return load_measurements(args.thermometry, n_sonications=len(protocol.sonications))


def run_assessment(result, measurements, args) -> None:
    """Calibrate and/or compute the band when asked; stores ``result.assessment``."""
    from ..assessment import assess
    from ..batch.engines import make_engine

    if measurements is None and not args.uncertainty:
        return
    engine = make_engine(args.workers, use_dask=args.dask) if args.uncertainty and (args.workers > 1 or args.dask) \
        else None
    update, close = progress_bar("calibration and uncertainty", enabled=not args.no_progress)
    try:
        assess(result, measurements, uncertainty_samples=args.uncertainty, engine=engine, progress=update)
    finally:
        close()
        if engine is not None:
            engine.close()
