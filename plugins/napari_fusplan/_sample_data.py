"""Sample data: the bundled Colin27 head and its clinical-like copy (nothing downloaded)."""
from __future__ import annotations

from fusplan import sample_scan_path
from fusplan import load_scan

from ._reader import scan_layer_data


def sample_ch2() -> list[tuple]:
    """Colin27 head with skull, 1 mm isotropic, stored RAS."""
    return [scan_layer_data(load_scan(sample_scan_path("ch2")), name="ch2")]


def sample_ch2_clinical() -> list[tuple]:
    """The same head re-sampled as a clinical scan: oblique, 1 x 1 x 2 mm, stored LPS, bias and noise."""
    return [scan_layer_data(load_scan(sample_scan_path("ch2_clinical")), name="ch2_clinical")]
