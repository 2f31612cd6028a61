"""Fixtures shared by the test modules."""
import copy

import pytest
import yaml

from fusplan.atlas import load_atlas, sample_scan_path
from fusplan.io import load_scan
from fusplan.protocol import load_protocol

#: A fast teaching protocol: Gaussian heat source, 16 mm box at 0.5 mm, three sonications
#: (one at fixed absorbed power, two titrated, the last 1 mm off target).
_GAUSSIAN_SPEC = {
    "name": "test gaussian",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [1.4, 1.4, 3.5]},
    "grid": {"spacing_mm": 0.5, "extent_mm": 16},
    "sonications": [
        {"stage": "alignment", "absorbed_power_w": 0.1, "duration_s": 6, "cooling_s": 10},
        {"stage": "treatment", "peak_c": 55, "duration_s": 8, "cooling_s": 16},
        {"stage": "treatment", "peak_c": 55, "duration_s": 8, "cooling_s": 16, "offset_mm": [1.0, 0, 0]},
    ],
    "thresholds_cem43": [17, 240],
}


#: The three stages (alignment, verification, treatment) on a coarse 20 mm box at 1 mm
#: (21^3 voxels): the fast protocol of the front-end tests (command line, batch, demo).
_STAGED_GAUSSIAN_SPEC = {
    "name": "quick staged gaussian",
    "tissue": "brain",
    "transducer": {"model": "gaussian", "fwhm_mm": [2.0, 2.0, 4.0]},
    "grid": {"spacing_mm": 1.0, "extent_mm": 20},
    "sonications": [
        {"stage": "alignment", "peak_c": 43, "duration_s": 5, "cooling_s": 10},
        {"stage": "verification", "peak_c": 49, "duration_s": 6, "cooling_s": 10},
        {"stage": "treatment", "peak_c": 57, "duration_s": 10, "cooling_s": 10},
    ],
    "thresholds_cem43": [17, 240],
}


@pytest.fixture
def gaussian_spec() -> dict:
    """The Gaussian test protocol as a mapping (a fresh copy: edit freely)."""
    return copy.deepcopy(_GAUSSIAN_SPEC)


@pytest.fixture(scope="session")
def gaussian_protocol():
    """The Gaussian test protocol, loaded (frozen)."""
    return load_protocol(copy.deepcopy(_GAUSSIAN_SPEC))


@pytest.fixture
def staged_gaussian_spec() -> dict:
    """The three-stage Gaussian test protocol as a mapping (a fresh copy: edit freely)."""
    return copy.deepcopy(_STAGED_GAUSSIAN_SPEC)


@pytest.fixture
def staged_protocol_file(tmp_path):
    """The three-stage Gaussian test protocol written to ``tmp_path/gaussian.yaml``."""
    path = tmp_path / "gaussian.yaml"
    path.write_text(yaml.safe_dump(_STAGED_GAUSSIAN_SPEC))
    return path


@pytest.fixture(scope="session")
def ch2():
    """The bundled Colin27 head (RAS, 1 mm)."""
    return load_scan(sample_scan_path("ch2"))


@pytest.fixture(scope="session")
def morel():
    """The Morel atlas."""
    return load_atlas("morel")
