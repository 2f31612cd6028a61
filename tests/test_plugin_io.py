"""napari plugin: manifest, reader and sample data place scans in world RAS mm."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
npe2 = pytest.importorskip("npe2")

import nibabel as nib  # noqa: E402

from fusplan.atlas import sample_scan_path  # noqa: E402
from fusplan.io import load_scan  # noqa: E402


def test_manifest_is_valid_and_discoverable():
    from npe2 import PluginManager, PluginManifest

    manifest = PluginManifest.from_distribution("fusplan")
    manifest.validate_imports()
    assert {c.id for c in manifest.contributions.commands} >= {
        "fusplan.get_reader", "fusplan.sample_ch2", "fusplan.sample_ch2_clinical", "fusplan.planning_widget"}
    manager = PluginManager()
    manager.discover()
    assert manager.get_manifest("fusplan").display_name  # what `npe2 list` shows
    readers = [reader.command for reader in manager.iter_compatible_readers(["head.nii.gz"])]
    assert "fusplan.get_reader" in readers


def _write_lps_copy(tmp_path, data, affine):
    """The same image stored LPS (first two axes flipped): same world, different storage."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [data.shape[0] - 1, data.shape[1] - 1, 0]
    lps = np.ascontiguousarray(data[::-1, ::-1, :])
    path = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(lps, affine @ flip), path)
    return path


def test_reader_uses_scan_affine(tmp_path):
    from napari_fusplan._reader import napari_get_reader

    rng = np.random.default_rng(0)
    data = rng.random((12, 14, 10)).astype(np.float32)
    affine = np.array([[1.2, 0, 0, -7.0], [0, 1.0, 0, 3.0], [0, 0, 2.0, 11.0], [0, 0, 0, 1]])
    ras = tmp_path / "ras.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), ras)
    lps = _write_lps_copy(tmp_path, data, affine)
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    (ras_layer,) = napari_get_reader(str(ras))(str(ras))
    (lps_layer,) = napari_get_reader(str(lps))(str(lps))
    world = np.array([2.3, 9.0, 17.0])
    samples = []
    for data_i, kwargs, kind in (ras_layer, lps_layer):
        assert kind == "image"
        index = np.round(np.linalg.solve(kwargs["affine"], np.append(world, 1))[:3]).astype(int)
        samples.append(data_i[tuple(index)])
    assert samples[0] == samples[1]
    assert lps_layer[1]["metadata"]["orientation"] == "LPS"


def test_reader_refuses_bad_file_with_named_error(tmp_path):
    from fusplan.errors import FusplanInputError
    from napari_fusplan._reader import read_scan

    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(FusplanInputError, match="broken.nii.gz"):
        read_scan(str(bad))


def test_sample_data_is_bundled_and_world_aligned():
    from napari_fusplan._sample_data import sample_ch2, sample_ch2_clinical

    (ch2,) = sample_ch2()
    (clinical,) = sample_ch2_clinical()
    assert np.allclose(ch2[1]["affine"], load_scan(sample_scan_path("ch2")).affine)
    assert clinical[1]["metadata"]["orientation"] == "LPS"
    assert ch2[0].ndim == clinical[0].ndim == 3
