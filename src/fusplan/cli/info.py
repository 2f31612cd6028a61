"""``fusplan info SCAN``: shape, voxel size, orientation and affine of a scan."""
from __future__ import annotations

from pathlib import Path

from ..textfile import display_path
from .common import print_json

HELP = "describe a scan: shape, voxel size, orientation, affine"


def add_parser(commands) -> None:
    parser = commands.add_parser("info", help=HELP, description=HELP)
    parser.add_argument("scan", type=Path, metavar="SCAN")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(run=run)


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


def run(args) -> int:
    from ..io import load_scan

    info = scan_info(load_scan(args.scan))
    if args.json:
        print_json(info)
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
