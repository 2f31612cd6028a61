"""The shared front-end steps (fusplan.subject) and the one side rule (fusplan.vocabulary)."""
from __future__ import annotations

import numpy as np
import pytest
from front_support import no_registration
from test_cli_skull import SAMPLE

from fusplan.errors import FusplanInputError
from fusplan.execution import ExecutionOptions
from fusplan.registration import Registration
from fusplan.subject import CtRequest, TargetRequest, ct_registration_beside, locate, prepare_subject, preset_settings
from fusplan.vocabulary import CT_REGISTRATION_FILE, SIDES, parse_sides

#: The CT inputs fixture (``inputs``: a head CT of the sample, its registrations) of the CLI skull tests.
pytest_plugins = ["test_cli_skull"]


@pytest.mark.parametrize("value, sides", [
    ("left", ("left",)), ("Right", ("right",)), (" both ", SIDES), ("left;right", SIDES), ("RIGHT+left", SIDES),
    ("right, left", SIDES), (("right", "left"), SIDES), (["Left"], ("left",)), ("left;left", ("left",)),
])
def test_one_side_rule_for_every_front_end(value, sides):
    assert parse_sides(value) == sides


@pytest.mark.parametrize("value", ["", "middle", "left;up", (), ["both", "left"], "lft"])
def test_a_word_that_is_not_a_side_is_refused_naming_what(value):
    with pytest.raises(FusplanInputError, match="--side must be left, right or both"):
        parse_sides(value, "--side")


@pytest.mark.parametrize("fields, message", [
    ({"ac_mm": (0, 2, 0)}, "AC and PC must be given together"),
    ({"target": "XYZ"}, "no label 'XYZ'"),
    ({"atlas": "najdenovska"}, "no central lateral"),
    ({"atlas": "nope"}, "unknown atlas"),
])
def test_a_bad_request_fails_its_cheap_check(fields, message):
    with pytest.raises(FusplanInputError, match=message):
        TargetRequest(**fields).check()


def test_a_request_at_acpc_coordinates_needs_no_atlas_label():
    TargetRequest(atlas="najdenovska", acpc_mm=(12.0, -6.0, 0.0), sides="both").check()


def _registration(scan, preset="affine", atlas="morel") -> Registration:
    from fusplan.registration import scan_fingerprint

    empty = np.zeros((0, 0, 0, 3), np.float32)
    return Registration(atlas=atlas, affine_mm=np.eye(4), field_shape=(0, 0, 0), field_affine=np.eye(4),
                        forward_mm=empty, backward_mm=empty, method="test", time_s=0.0, similarity=1.0,
                        affine_similarity=1.0, contrast="T1", scan_fingerprint=scan_fingerprint(scan),
                        settings=preset_settings(preset))


def test_a_cache_is_reused_only_for_the_same_scan_atlas_and_preset(tmp_path, ch2, monkeypatch):
    """A cached registration is used when it fits; a damaged one is registered afresh (no error), a
    damaged one given by the user is refused. (The identity stands in for registering: Colin27 is in MNI space.)"""
    from fusplan import targeting

    calls = []

    def identity_register(scan, atlas, *, settings, progress=None):
        calls.append(settings)
        return _registration(scan, settings)

    monkeypatch.setattr(targeting, "register", identity_register)
    cache = tmp_path / "cache" / "registration.npz"
    for preset, registered in (("affine", 1), ("affine", 1), ("fast", 2), ("fast", 2)):
        found = locate(ch2, TargetRequest(registration_cache=cache), ExecutionOptions(registration_preset=preset))
        assert len(calls) == registered and found.targets[0].side == "left", preset
    cache.write_bytes(cache.read_bytes()[:-50])  # damaged
    with pytest.raises(FusplanInputError):
        locate(ch2, TargetRequest(registration=cache))
    locate(ch2, TargetRequest(registration_cache=cache), ExecutionOptions(registration_preset="fast"))
    assert calls == ["affine", "fast", "fast"]


def test_the_ct_registration_saved_beside_a_registration_file_is_a_candidate(tmp_path):
    assert ct_registration_beside(tmp_path / "out" / "registration.npz") == (tmp_path / "out" / CT_REGISTRATION_FILE,)
    assert ct_registration_beside(None) == ()


# ------------------------------------------------------------------ CT registration reuse


def test_the_ct_registration_saved_beside_a_registration_is_reused(inputs, monkeypatch):
    """What the plugin gets: the CT registration written by --out next to the registration it is given."""
    from fusplan import subject

    monkeypatch.setattr(subject, "register_ct_to_mr", no_registration)
    ct = CtRequest(inputs["ct"], reuse=ct_registration_beside(inputs["registration"]))
    prepared = prepare_subject(SAMPLE, TargetRequest(registration=inputs["registration"]), ct)
    assert np.array_equal(prepared.ct_registration.mr_to_ct_mm, np.eye(4))
    assert prepared.skull_ct.subject_to_ct is not None


@pytest.mark.parametrize("damage, reused_or_refused", [
    ("foreign", "registers"),  # a saved file of another CT: registered afresh
    ("truncated", "refused"),  # a damaged saved file: refused naming it, before the scan is read
])
def test_a_saved_ct_registration_that_does_not_fit(inputs, tmp_path, monkeypatch, damage, reused_or_refused):
    from fusplan import subject

    monkeypatch.setattr(subject, "register_ct_to_mr", no_registration)
    saved = tmp_path / CT_REGISTRATION_FILE
    source = inputs["cropped_registration"] if damage == "foreign" else inputs["ct_registration"]
    data = source.read_bytes()
    saved.write_bytes(data if damage == "foreign" else data[:-40])
    request = TargetRequest(registration=inputs["registration"])
    if reused_or_refused == "registers":
        with pytest.raises(AssertionError, match="registered"):
            prepare_subject(SAMPLE, request, CtRequest(inputs["ct"], reuse=(saved,)))
    else:
        with pytest.raises(FusplanInputError, match=CT_REGISTRATION_FILE):
            prepare_subject(SAMPLE, request, CtRequest(inputs["ct"], reuse=(saved,)))
    # a batch cache is tolerant of both: it registers afresh
    cache = tmp_path / "cache"
    ct = subject.load_ct(inputs["ct"])
    scan = subject.load_scan(SAMPLE)
    path = subject.ct_cache_path(cache, ct, scan)
    path.parent.mkdir()
    path.write_bytes(saved.read_bytes())
    with pytest.raises(AssertionError, match="registered"):
        prepare_subject(scan, request, CtRequest(ct, cache_dir=cache))
