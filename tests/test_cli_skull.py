"""`fusplan plan/target --ct` through the command line: CT checks before registration, exit codes,
the skull files, the saved CT registration and the population skull note."""
import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import yaml

from fusplan.atlas import sample_scan_path
from fusplan.cli import main
from fusplan.io import load_scan
from fusplan.registration import scan_fingerprint
from fusplan.skull import CtRegistration, load_ct, population_skull, resample_to_grid
from fusplan.skull.registration import ct_fingerprint
from test_skull_population import identity_registration

PROTOCOL = {
    "name": "cli skull", "transducer": {"model": "hemispherical_array"},
    "grid": {"spacing_mm": 1.0, "extent_mm": 10},
    "sonications": [{"stage": "treatment", "peak_c": 55, "duration_s": 10, "cooling_s": 0}],
}
SAMPLE = sample_scan_path("ch2")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Protocol, a saved atlas registration of the sample head, and head CTs in the sample's world
    (the population skull rendered as a patient CT: background air), whole and cropped."""
    folder = tmp_path_factory.mktemp("cli_skull")
    scan = load_scan(SAMPLE)
    registration = replace(identity_registration(), scan_fingerprint=scan_fingerprint(scan))
    paths = {"protocol": folder / "protocol.yaml", "registration": registration.save(folder / "registration.npz")}
    paths["protocol"].write_text(yaml.safe_dump(PROTOCOL))
    affine = scan.affine  # 1 mm: the population skull's restored diploe survives the rendering
    shape = tuple(scan.shape[:3])
    hu = resample_to_grid(population_skull(identity_registration()), shape, affine)
    hu[hu == 0] = -1000.0
    paths["ct"] = folder / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, affine), paths["ct"])
    assert np.allclose(affine[2, :3], [0, 0, affine[2, 2]]) and affine[2, 2] > 0  # ch2 is stored RAS
    top = int(np.sum(affine[2, 2] * np.arange(shape[2]) + affine[2, 3] <= 15.0))  # keep z <= 15 mm
    paths["cropped"] = folder / "cropped_ct.nii.gz"
    nib.save(nib.Nifti1Image(hu[:, :, :top].copy(), affine), paths["cropped"])
    identity = CtRegistration(np.eye(4), ct_fingerprint(load_ct(paths["ct"])), scan_fingerprint(scan), 0.0, 0.0)
    paths["ct_registration"] = identity.save(folder / "ct_registration.npz")
    other = replace(identity, ct_fingerprint="0" * 40)  # of another CT (the cropped one does not load)
    paths["cropped_registration"] = other.save(folder / "cropped_registration.npz")
    mr = nib.load(SAMPLE)
    paths["mr"] = folder / "mr_as_ct.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(mr.dataobj, np.float32), mr.affine), paths["mr"])
    paths["soft"] = folder / "no_bone.nii.gz"
    nib.save(nib.Nifti1Image(np.clip(hu, -1000, 300), affine), paths["soft"])
    return paths


def plan(inputs, out, *extra):
    return main(["plan", str(SAMPLE), "--protocol", str(inputs["protocol"]), "--registration",
                 str(inputs["registration"]), "--no-progress", "--json", "--out", str(out), *extra])


@pytest.mark.parametrize("name, reason", [("mr", "not a CT in Hounsfield units"), ("soft", "no bone"),
                                          ("missing", "no such CT")])
def test_a_ct_that_is_not_a_head_ct_is_refused_before_registration(inputs, tmp_path, capsys, name, reason):
    path = inputs.get(name, tmp_path / "missing.nii.gz")
    out = tmp_path / "out"
    assert plan(inputs, out, "--ct", str(path)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and path.name in lines[0] and reason in lines[0]
    assert not (out / "report.json").exists()


def test_a_ct_cropped_above_the_beams_is_refused(inputs, tmp_path, capsys):
    """Refused when the CT is read, before any registration (the registration given is never read)."""
    out = tmp_path / "out"
    code = plan(inputs, out, "--ct", str(inputs["cropped"]), "--ct-registration", str(inputs["cropped_registration"]))
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "cropped_ct.nii.gz" in lines[0] and "skull cap" in lines[0]
    assert not (out / "report.json").exists()


def test_a_ct_registration_of_another_ct_is_refused(inputs, tmp_path, capsys):
    code = plan(inputs, tmp_path / "out", "--ct", str(inputs["ct"]), "--ct-registration",
                str(inputs["cropped_registration"]))
    assert code == 2 and "another CT" in capsys.readouterr().err


@pytest.mark.slow
def test_plan_with_a_patient_ct_and_with_the_population_skull(inputs, tmp_path, capsys):
    out = tmp_path / "ct"
    assert plan(inputs, out, "--ct", str(inputs["ct"]), "--ct-registration", str(inputs["ct_registration"])) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["skull"]["source"] == "ct" and doc["skull"]["active_elements"] > 900
    assert {"report.json", "elements_left.csv", "ct.nii.gz", "skull_left.png", "ct_registration.npz"} <= \
        {p.name for p in out.iterdir()}
    assert "population" not in captured.err
    population_out = tmp_path / "population"
    assert plan(inputs, population_out) == 0
    captured = capsys.readouterr()
    doc_population = json.loads(captured.out)
    assert doc_population["skull"]["source"] == "population template"
    assert "warning" in captured.err and "population CT template" in captured.err
    # the same head: patient CT (the template rendered in the subject) and population skull agree
    assert doc["skull"]["sdr"] == pytest.approx(doc_population["skull"]["sdr"], abs=0.05)
    assert doc["sonications"][0]["power_w"] == pytest.approx(doc_population["sonications"][0]["power_w"], rel=0.15)
