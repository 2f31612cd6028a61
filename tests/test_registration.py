"""Registration: accuracy on synthetic subjects with a known warp, save/load, failures.

Slow-ish: two synthetic registrations (T1, T2-like), cached per module, plus three
quick failure cases that stop after the affine stage.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import ndimage

from fusplan.errors import FusplanInputError
from fusplan.io import Scan
from fusplan.registration import Registration, load_registration, register
from fusplan.samples import synthetic_subject
from fusplan.targeting import clp_template_point


@pytest.fixture(scope="module")
def thalamus_points(morel):
    """CLp (both sides) and the centroid of every Morel nucleus, template world mm."""
    indices = np.unique(morel.labels)
    indices = indices[indices > 0]
    centroids = np.array(ndimage.center_of_mass(morel.labels > 0, morel.labels, indices))
    centroids = centroids @ morel.affine[:3, :3].T + morel.affine[:3, 3]
    clp = [clp_template_point(morel, side) for side in ("left", "right")]
    return np.vstack([clp, centroids])


def _subject(morel, contrast):
    # 1.5 mm voxels keep generation quick; the registration works on world coordinates
    return synthetic_subject(morel, seed=1, contrast=contrast, spacing_mm=(1.5, 1.5, 1.5))


@pytest.fixture(scope="module")
def t1_case(morel):
    subject = _subject(morel, "T1")
    return subject, register(subject.scan, morel)


@pytest.fixture(scope="module")
def t2_case(morel):
    subject = _subject(morel, "T2")
    return subject, register(subject.scan, morel)


def test_synthetic_truth_is_an_exact_inverse(morel, thalamus_points):
    subject = synthetic_subject(morel, seed=3, spacing_mm=(6.0, 6.0, 6.0), noise=0.0, bias=0.0)
    subject_points = subject.template_to_subject(thalamus_points)
    moved = (subject_points - subject.affine_mm[:3, 3]) @ np.linalg.inv(subject.affine_mm[:3, :3]).T
    np.testing.assert_allclose(moved + subject._d(moved), thalamus_points, atol=1e-4)


@pytest.mark.slow
def test_t1_synthetic_accuracy(t1_case, thalamus_points):
    subject, reg = t1_case
    truth = subject.template_to_subject(thalamus_points)
    error = np.linalg.norm(reg.template_to_subject(thalamus_points) - truth, axis=1)
    assert reg.contrast == "T1"
    assert error.mean() <= 0.5 and error.max() <= 1.0, (error.mean(), error.max())
    assert reg.similarity > 0.9


@pytest.mark.slow
def test_t2_like_synthetic_accuracy(t2_case, thalamus_points):
    subject, reg = t2_case
    truth = subject.template_to_subject(thalamus_points)
    error = np.linalg.norm(reg.template_to_subject(thalamus_points) - truth, axis=1)
    assert reg.contrast == "non-T1"
    assert error.mean() <= 1.0, error.mean()


@pytest.mark.slow
def test_mapping_is_inverse_consistent(t1_case, thalamus_points):
    _, reg = t1_case
    back = reg.subject_to_template(reg.template_to_subject(thalamus_points))
    assert np.abs(back - thalamus_points).max() < 0.2


@pytest.mark.slow
def test_save_load_and_pickle_round_trip(t1_case, thalamus_points, tmp_path):
    subject, reg = t1_case
    path = reg.save(tmp_path / "reg.npz")
    loaded = load_registration(path)
    unpickled = pickle.loads(pickle.dumps(reg))
    for other in (loaded, unpickled):
        assert isinstance(other, Registration)
        np.testing.assert_allclose(other.template_to_subject(thalamus_points), reg.template_to_subject(thalamus_points))
        assert other.matches(subject.scan)
        assert other.facts() == reg.facts()
    with pytest.raises(FusplanInputError, match="not a fusplan registration"):
        (tmp_path / "bad.npz").write_bytes(b"junk")
        load_registration(tmp_path / "bad.npz")


@pytest.mark.slow
def test_volume_ratio_matches_the_known_warp(t1_case, morel):
    subject, reg = t1_case
    points = np.argwhere(morel.labels > 0) @ morel.affine[:3, :3].T + morel.affine[:3, 3]
    expected = abs(np.linalg.det(subject.affine_mm[:3, :3]))
    # the thalamus as a whole: the warp's mean Jacobian is close to 1 over a ~20 mm region
    assert reg.jacobian_determinant(points).mean() == pytest.approx(expected, rel=0.08)


def test_progress_reports_and_cancellation(morel, ch2):
    seen = []

    class Stop(Exception):
        pass

    def progress(fraction, message):
        seen.append((fraction, message))
        if fraction >= 0.1:
            raise Stop

    with pytest.raises(Stop):
        register(ch2, morel, progress=progress)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert all(isinstance(m, str) and m for _, m in seen)


def _crop(scan: Scan, centre_mm, half_mm) -> Scan:
    centre = np.rint(scan.world_to_voxel(centre_mm)).astype(int)
    slices = tuple(slice(c - half_mm, c + half_mm) for c in centre)
    affine = scan.affine.copy()
    affine[:3, 3] = scan.voxel_to_world([s.start for s in slices])
    return Scan(scan.data[slices].copy(), affine)


@pytest.mark.parametrize("kind", ["noise", "tiny crop", pytest.param("phantom", marks=pytest.mark.slow)])
def test_not_a_head_is_refused(kind, morel, ch2):
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -90
    if kind == "noise":
        scan = Scan(rng.random((90, 108, 90), dtype=np.float32), affine)
    elif kind == "tiny crop":
        scan = _crop(ch2, (0.0, -15.0, 5.0), 12)
    else:  # a water sphere of radius 70 mm
        index = np.indices((90, 108, 90)).astype(np.float32)
        radius_mm = 2 * np.sqrt(((index - np.array([45, 54, 45])[:, None, None, None]) ** 2).sum(axis=0))
        noise = rng.normal(0, 2, index.shape[1:]).astype(np.float32)
        scan = Scan((radius_mm < 70).astype(np.float32) * 100 + noise, affine)
    with pytest.raises(FusplanInputError, match="registration|field of view|outside"):
        register(scan, morel)
