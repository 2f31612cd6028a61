"""Teaching prose (fusplan.teaching): every damage claim follows the numbers (17 / 240 CEM43)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fusplan.teaching import ABLATION_CEM43, INJURY_CEM43, demo_markdown, dose_meaning, model_text, stage_steps
from fusplan.timeline import Timeline


def _plateau_report(verification_c: float, verification_s: float = 10.0) -> dict:
    """Alignment at 42 C then verification held at ``verification_c``: the focus dose is known exactly.

    At a constant T >= 43 C, CEM43 = 2 ** (T - 43) * minutes (Sapareto & Dewey 1984).
    """
    ramp = 1e-3
    v0 = 40.0
    v1 = v0 + verification_s
    time_s = [0, ramp, 10, 10 + ramp, 40, 40 + ramp, v1, v1 + ramp, v1 + 30]
    temperature_c = [37, 42, 42, 37, 37, verification_c, verification_c, 37, 37]
    sonications = [
        {"index": 1, "stage": "alignment", "duration_s": 10.0, "cooling_s": 30.0, "power_w": 20.0,
         "peak_temperature_c": 42.0, "energy_j": 200.0},
        {"index": 2, "stage": "verification", "duration_s": verification_s, "cooling_s": 30.0, "power_w": 60.0,
         "peak_temperature_c": verification_c, "energy_j": 600.0},
    ]
    return Timeline.from_report({"sonications": sonications, "focus": {"time_s": time_s, "temperature_c": temperature_c}})


_GAUSSIAN = SimpleNamespace(model="gaussian", fwhm_mm=(2.0, 2.0, 4.0))
_ARRAY = SimpleNamespace(model="hemispherical_array", elements=1024, frequency_khz=650.0, radius_mm=150.0,
                         skull_transmission=0.2, phase_aberration_std_rad=0.0)


def _result(timeline: Timeline, transducer=_GAUSSIAN, skull=None):
    """What demo_markdown reads of a SimulationResult, for one phantom side."""
    protocol = SimpleNamespace(name="plateau", transducer=transducer)
    return SimpleNamespace(protocol=protocol, targets=None, sides={None: SimpleNamespace(skull=skull)},
                           timeline=lambda side: timeline, regions=lambda side: [])


def test_dose_meaning_follows_the_two_thresholds():
    assert "reversible" in dose_meaning(INJURY_CEM43 - 0.1)
    assert "injured but may recover" in dose_meaning(INJURY_CEM43)
    assert "injured but may recover" in dose_meaning(ABLATION_CEM43 - 0.1)
    assert "coagulated" in dose_meaning(ABLATION_CEM43)


def test_a_verification_above_240_cem43_is_never_called_reversible():
    steps = {s.stage: s for s in stage_steps(_plateau_report(55.0))}
    verification = steps["verification"]
    assert verification.focus_dose_cem43 == pytest.approx(2 ** 12 * 10 / 60, rel=0.01)  # 683 CEM43 > 240
    assert "reversible heating" not in verification.text
    assert "before a permanent lesion" not in verification.text
    assert "coagulate" in verification.text and "683 CEM43" in verification.text
    notes = demo_markdown(_result(_plateau_report(55.0)), None, [], {})
    section = notes.split("### Verification")[1].split("###")[0]
    assert "before a permanent lesion" not in section and "coagulate" in section


def test_a_mild_verification_is_called_reversible_and_the_alignment_harmless():
    steps = {s.stage: s for s in stage_steps(_plateau_report(45.0))}
    verification = steps["verification"]
    # 45 C for 10 s plus the alignment, 42 C for 10 s (R = 0.25 below 43 C): 0.67 + 0.04 CEM43 < 17.
    assert verification.focus_dose_cem43 == pytest.approx(2 ** 2 * 10 / 60 + 0.25 * 10 / 60, rel=0.01)
    assert "reversible" in verification.text and "before a permanent lesion" in verification.text
    assert "coagulate" not in verification.text
    alignment = steps["alignment"]
    assert alignment.focus_dose_cem43 < INJURY_CEM43 and "no lasting damage" in alignment.text
    assert alignment.to_dict()["sonications"] == [1]


def test_a_verification_between_17_and_240_says_injury_without_coagulation():
    # 50 C for 60 s: 2 ** 7 * 1 min = 128 CEM43.
    verification = {s.stage: s for s in stage_steps(_plateau_report(50.0, 60.0))}["verification"]
    assert verification.focus_dose_cem43 == pytest.approx(128, rel=0.01)
    assert "no coagulation yet" in verification.text and "before a permanent lesion" not in verification.text


def test_the_model_is_described_as_it_ran():
    """The notes name the model the run used: a ray-traced skull is never called idealised (issue 20.3)."""
    timeline = _plateau_report(45.0)
    assert "no acoustics, no skull" in model_text(_result(timeline), None)
    idealised = model_text(_result(timeline, _ARRAY), None)
    assert "idealised skull" in idealised and "one energy transmission factor (0.2)" in idealised
    assert "no phase aberration" in idealised
    skull = SimpleNamespace(source="population template", phase_correction="ct", active=np.ones(1024, bool),
                            active_elements=1024, residual_phase_std_rad=np.full(1024, 0.3), energy_transmission=0.089)
    traced = model_text(_result(timeline, _ARRAY, skull), None)
    assert "rays traced from every element through the population template skull" in traced
    assert "1024 of 1024 elements" in traced and "phase correction from the CT" in traced
    assert "idealised" not in traced and "no aberration" not in traced
    notes = demo_markdown(_result(timeline, _ARRAY, skull), None, [], {})
    assert traced in notes and "idealised" not in notes
    assert "bottom panel" in notes and "log axis, right" not in notes  # focus.png draws the dose below
