"""Front-end behaviour of the command line (issue 13): cheap checks first, one --side default,
the registration written by --out and reused, progress on stderr with clean --json stdout."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from front_support import no_registration, no_simulation

from fusplan import planner, targeting
from fusplan.atlas import sample_scan_path
from fusplan.cli import build_parser, main
from fusplan.protocol import BUNDLED_PROTOCOLS, load_protocol

SAMPLE = str(sample_scan_path("ch2"))


def test_plain_fusplan_prints_the_command_list():
    result = subprocess.run([sys.executable, "-m", "fusplan"], capture_output=True, text=True, timeout=60,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    for command in ("info", "target", "simulate", "plan", "batch", "demo"):
        assert f"\n    {command}" in result.stdout


def test_one_side_default_and_the_same_choices_everywhere(capsys):
    parser = build_parser()
    defaults = {}
    for argv in (["target", "s.nii"], ["simulate", "clt"], ["plan", "s.nii"], ["batch", "--out", "o"]):
        defaults[argv[0]] = parser.parse_args(argv).side
        assert parser.parse_args([*argv, "--side", "both"]).side == "both"
    assert set(defaults.values()) == {"left"}, defaults
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--help"])
    help_text = capsys.readouterr().out
    assert "left, right or both" in help_text and "(default: left" in help_text


def test_the_vocabulary_is_the_library_one():
    """fusplan.vocabulary (imported by ``--help``, no numpy) names exactly the atlases and presets there are."""
    from fusplan.atlas import ATLAS_FOLDERS
    from fusplan.registration.settings import SETTINGS
    from fusplan.vocabulary import ATLASES, REGISTRATION_PRESETS

    assert ATLASES == tuple(ATLAS_FOLDERS) and REGISTRATION_PRESETS == tuple(SETTINGS)


def test_plan_synopsis_lists_target_and_atlas(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plan", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "--target" in usage and "--atlas" in usage and "--registration" in usage


def test_bundled_protocol_names_are_case_insensitive_and_unknown_names_list_them(tmp_path, capsys):
    assert load_protocol("CLT").name == load_protocol("clt").name
    assert load_protocol("Vim").name == load_protocol("vim").name
    assert main(["simulate", "ctl"]) == 2
    err = capsys.readouterr().err
    assert "ctl" in err and ", ".join(BUNDLED_PROTOCOLS) in err and len(err.strip().splitlines()) == 1


def test_demo_registration_is_a_file_and_the_preset_has_its_own_name():
    args = build_parser().parse_args(["demo", "--registration", "saved.npz", "--registration-preset", "affine"])
    assert str(args.registration) == "saved.npz" and args.registration_preset == "affine"


@pytest.mark.parametrize("argv", [["target", "s.nii"], ["plan", "s.nii"], ["simulate", "clt"], ["batch", "--out", "o"],
                                  ["demo"]])
def test_every_registering_command_takes_the_registration_preset(argv, capsys):
    parser = build_parser()
    assert parser.parse_args(argv).registration_preset == "standard"
    assert parser.parse_args([*argv, "--registration-preset", "fast"]).registration_preset == "fast"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--registration-preset", "quick"])
    assert "invalid choice: 'quick'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["simulate", "clt"], ["plan", SAMPLE], ["target", SAMPLE]])
def test_out_that_is_a_file_fails_before_any_work(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(planner, "simulate", no_simulation)
    monkeypatch.setattr(targeting, "register", no_registration)
    readme = tmp_path / "README.md"
    readme.write_text("keep me")
    assert main([*command, "--out", str(readme)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert readme.read_text() == "keep me"


@pytest.mark.parametrize("argv, message", [
    (["target", SAMPLE, "--target", "Vim"], "no label 'Vim'"),
    (["plan", SAMPLE, "--target", "XYZ"], "no label 'XYZ'"),
    (["target", SAMPLE, "--atlas", "najdenovska", "--target", "VLpv"], "no label 'VLpv'"),
    (["target", SAMPLE, "--atlas", "najdenovska"], "no central lateral (CL) label"),
])
def test_unknown_target_label_fails_before_registering(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(targeting, "register", no_registration)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_target_and_plan_out_write_a_reusable_registration(tmp_path, capsys, monkeypatch, staged_protocol_file):
    out = tmp_path / "target-out"
    # the affine preset registers in seconds instead of the standard one's minute
    assert main(["target", SAMPLE, "--out", str(out), "--json", "--registration-preset", "affine"]) == 0
    captured = capsys.readouterr()
    first = json.loads(captured.out)  # stdout is exactly one JSON document
    assert "targeting" in captured.err  # the progress bar went to stderr
    saved = out / "registration.npz"
    assert saved.is_file()

    # Reuse: no registration at all, the same targets.
    monkeypatch.setattr(targeting, "register", no_registration)
    assert main(["target", SAMPLE, "--registration", str(saved), "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    again = json.loads(captured.out)
    np.testing.assert_allclose(again["targets"][0]["ras_mm"], first["targets"][0]["ras_mm"], atol=1e-6)

    protocol = staged_protocol_file
    plan_out = tmp_path / "plan-out"
    assert main(["plan", SAMPLE, "--protocol", str(protocol), "--registration", str(saved),
                 "--out", str(plan_out), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["protocol"] == "quick staged gaussian"
    assert "simulating" in captured.err and "targeting" in captured.err
    assert (plan_out / "registration.npz").is_file() and (plan_out / "report.json").is_file()


def test_the_command_line_and_the_vocabulary_import_no_numerical_module():
    """``fusplan --help`` stays quick: the parser and the shared words need no numpy, scipy or nibabel."""
    code = ("import sys, fusplan.cli, fusplan.vocabulary; fusplan.cli.build_parser(); "
            "print([m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy', 'nibabel')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
