"""napari plugin: planning widget, protocol editor, simulation view, results and teaching (Xvfb)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from plugin_support import FAST_PROTOCOL, wait_idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

WAIT_MS = 120_000


@pytest.fixture
def planner(make_napari_viewer, qtbot):
    """A viewer with the planning widget docked (no scan)."""
    from napari_fusplan._widget import PlanningWidget

    viewer = make_napari_viewer()
    widget = PlanningWidget(viewer)
    viewer.window.add_dock_widget(widget, name="planner")
    return viewer, widget


def test_widget_is_offered_by_the_plugin_menu(make_napari_viewer):
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    widgets = [w.display_name for w in manager.iter_widgets() if w.command.startswith("fusplan.")]
    assert widgets == ["Thalamotomy planner"]
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("fusplan", "Thalamotomy planner")
    assert type(widget).__name__ == "PlanningWidget"


def test_protocol_editor_validates_as_you_edit(planner, tmp_path):
    from fusplan.protocol import default_protocol_path, load_protocol

    _, widget = planner
    editor = widget.editor
    bundled = load_protocol(default_protocol_path("clt"))
    assert editor.protocol.sonications == bundled.sonications
    editor.set_cell(1, "duration_s", 0)
    assert editor.protocol is None
    assert "sonications[1].duration_s must be > 0" in editor.status.text()
    assert not widget.simulate_button.isEnabled()
    editor.set_cell(1, "duration_s", 12)
    editor.set_cell(0, "power by", "power_w")
    editor.set_cell(0, "value", 90)
    assert editor.protocol is not None and widget.simulate_button.isEnabled()
    assert editor.protocol.sonications[0].power_w == 90
    saved = load_protocol(editor.save(tmp_path / "edited.yaml"))
    assert saved.sonications == editor.protocol.sonications
    editor.set_cell(2, "repeat", 0)
    assert "sonications[2].repeat must be between 1 and" in editor.status.text()
    editor.set_cell(2, "stage", "verification")
    editor.set_cell(2, "repeat", 2)
    assert [s.stage for s in editor.protocol.sonications[:4]] == ["alignment", "verification", "verification",
                                                                 "verification"]


def test_phantom_simulation_view_matches_library(planner, qtbot):
    from fusplan.planner import simulate
    from fusplan.protocol import load_protocol
    from napari_fusplan import _session as session

    viewer, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    widget.simulate()
    wait_idle(qtbot, widget, WAIT_MS)
    expected = simulate(load_protocol(FAST_PROTOCOL)).to_dict()
    assert widget.document == expected
    # results panel: the same numbers as the CLI JSON
    for name, rows in (("sonications", expected["sonications"]), ("lesions", expected["lesions"]),
                       ("nuclei", session.nuclei_rows(expected))):
        assert widget.results_table(name) == session.table(rows)
    # layers: temperature movie with a fixed labelled colour scale, dose, lesion regions
    temperature = widget.layer("temperature")
    assert temperature.ndim == 4 and temperature.data.shape[0] == len(widget.frame_times_s)
    assert tuple(temperature.contrast_limits) == (37.0, 60.0)
    assert temperature.colormap.name == "inferno" and temperature.colorbar.visible
    assert float(temperature.data.max()) == pytest.approx(max(s["peak_temperature_c"] for s in expected["sonications"]),
                                                          abs=0.5)
    lesion = widget.layer("lesion")
    assert set(np.unique(lesion.data)) <= {0, 1, 2} and (lesion.data == 2).any()
    assert widget.layer("dose").data.max() >= np.log10(240)
    # teaching mode: one step per stage, slider at that stage's peak, numbers in the text
    assert [s["stage"] for s in widget.steps] == ["alignment", "verification", "treatment"]
    for index, step in enumerate(widget.steps):
        widget.show_step(index)
        assert widget.frame_times_s[widget.current_frame()] == pytest.approx(step["time_s"])
        assert step["stage"] in viewer.text_overlay.text
        sonication = next(s for s in expected["sonications"] if s["stage"] == step["stage"])
        assert f"{sonication['peak_temperature_c']:.1f} °C" in step["text"]
    assert widget._plot is not None and widget._plot.cursor.get_xdata()[0] == pytest.approx(widget.steps[-1]["time_s"])


def test_export_writes_the_cli_report(planner, qtbot, tmp_path):
    import json

    _, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    widget.simulate()
    wait_idle(qtbot, widget, WAIT_MS)
    widget.export_plan(tmp_path / "plan")
    wait_idle(qtbot, widget, WAIT_MS)
    written = json.loads((tmp_path / "plan" / "report.json").read_text())
    assert written["sonications"][0]["index"] == 1
    assert written["protocol"] == widget.document["protocol"]
    assert (tmp_path / "plan" / "dose_cem43.nii.gz").is_file()


def test_cancel_stops_the_worker(planner, qtbot):
    _, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    widget.simulate()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.last_error == "cancelled" and widget.result is None
    assert widget.simulate_button.isEnabled()
