"""napari plugin GUI without a scan: docking, protocol editor, phantom simulation, export, cancel, close (Xvfb).

Every widget here is opened the way napari users open it
(``viewer.window.add_plugin_dock_widget``), so it sees napari's proxy viewer.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from plugin_support import FAST_PROTOCOL, dock_planner, run  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def planner(make_napari_viewer):
    viewer = make_napari_viewer()
    return viewer, dock_planner(viewer)


def test_widget_is_offered_by_the_plugin_menu(planner):
    from npe2 import PluginManager

    manager = PluginManager.instance()
    widgets = [w.display_name for w in manager.iter_widgets() if w.command.startswith("fusplan.")]
    assert widgets == ["Thalamotomy planner"]
    _, widget = planner
    assert type(widget).__name__ == "PlanningWidget"
    assert "No scan: Simulate runs the tissue phantom" in widget.status.text()


def test_protocol_errors_name_the_table_row_and_colour_the_cell(planner, qtbot):
    from fusplan.protocol import default_protocol_path, load_protocol
    from napari_fusplan._protocol_editor import BAD_CELL, COLUMNS
    from qtpy.QtCore import Qt

    viewer, widget = planner
    editor = widget.editor
    assert editor.protocol.sonications == load_protocol(default_protocol_path("clt")).sonications
    editor.set_cell(2, "duration_s", 0)
    assert editor.protocol is None
    assert editor.status.text().startswith("row 3, duration_s: must be > 0")  # table row 3 = sonications[2]
    item = editor.table.item(2, COLUMNS.index("duration_s"))
    assert item.background().color() == BAD_CELL
    assert not widget.plan.simulate_button.isEnabled()
    assert "protocol has an error" in widget.plan.reason.text()
    assert "protocol has an error" in widget.plan.simulate_button.toolTip()
    editor.set_cell(2, "duration_s", 12)
    assert item.background().style() == Qt.BrushStyle.NoBrush and widget.plan.simulate_button.isEnabled()
    editor.set_cell(0, "power by", "power_w")
    editor.set_cell(0, "value", 90)
    assert editor.protocol.sonications[0].power_w == 90
    assert editor.table.item(0, COLUMNS.index("value")).toolTip() == "W"
    assert editor.table.cellWidget(0, COLUMNS.index("power by")).currentText() == "power (W)"
    headers = [editor.table.horizontalHeaderItem(c).text() for c in range(len(COLUMNS))]
    assert headers[3:] == ["on (s)", "cool (s)", "repeat", "offset (mm)"]
    viewer.window.show()
    widget.tabs.setCurrentWidget(editor)
    qtbot.waitUntil(editor.isVisible, timeout=5000)
    assert not editor.table.horizontalScrollBar().isVisible()  # every column on screen


def test_phantom_simulation_view_matches_library(planner, qtbot):
    from fusplan import load_protocol, simulate
    from napari_fusplan._tables import nuclei_rows, table

    viewer, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    assert widget.plan.simulate_button.isEnabled()  # no scan: the phantom is fine
    run(qtbot, widget, widget.simulate)
    expected = simulate(load_protocol(FAST_PROTOCOL)).to_dict()
    assert widget.document == expected
    assert "in the tissue phantom" in widget.results.summary.text()
    for name, rows in (("sonications", expected["sonications"]), ("lesions", expected["lesions"]),
                       ("nuclei", nuclei_rows(expected))):
        assert widget.results.cells(name) == table(rows)
    header, labels, cells, notes = widget.results.cells("lesions")
    assert header[:5] == ["Diameter\n(mm)", "LR\n(mm)", "AP\n(mm)", "SI\n(mm)", "Volume\n(mm³)"]  # human, units
    assert labels == ["17 CEM43", "240 CEM43"]
    assert cells[0][0] == f"{expected['lesions'][0]['equivalent_diameter_mm']:.2f}"
    assert notes == [f"{lesion['threshold_cem43']:g} CEM43: {lesion['corresponds_to']}" for lesion in expected["lesions"]]
    assert widget.results.cells("isotherms") == table(expected["isotherms"])
    temperature = widget.own_layer("temperature")
    assert temperature.ndim == 4 and temperature.data.shape[0] == len(widget.frame_times_s)
    peak_c = max(s["peak_temperature_c"] for s in expected["sonications"])
    assert tuple(temperature.contrast_limits) == pytest.approx((37.0, peak_c))
    assert "°C" in temperature.name and temperature.colorbar.visible
    lesion = widget.own_layer("lesion")
    assert lesion.data.shape[0] == temperature.data.shape[0]  # the lesion follows time
    assert widget.scan_names() == []  # no simulation layer is offered as a scan
    steps = widget.teaching.steps
    assert [s["stage"] for s in steps] == ["alignment", "verification", "treatment"]
    for index, step in enumerate(steps):
        widget.show_step(index)
        assert widget.frame_times_s[widget.current_frame()] == pytest.approx(step["time_s"])
        assert step["stage"] in viewer.text_overlay.text
        frame = widget.current_frame()
        focus = np.asarray(temperature.data[frame]).max()
        sonication = next(s for s in expected["sonications"] if s["stage"] == step["stage"])
        assert focus == pytest.approx(sonication["peak_temperature_c"], abs=0.05)  # hover = the model's value
        shown = (np.asarray(lesion.data[frame]) > 0).any()
        assert shown == (step["stage"] == "treatment")  # no lesion during alignment / verification
    assert widget.result_view.plot.cursors[0].get_xdata()[0] == pytest.approx(steps[-1]["time_s"])
    ratio = widget.timings_s["plugin_job_s"] / widget.timings_s["library_s"]
    print(f"\nplugin Simulate job / library simulate: {ratio:.2f}")


def test_thermometry_file_calibrates_and_shows_the_prediction_and_band(planner, qtbot, tmp_path):
    viewer, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    bad = tmp_path / "bad.yaml"
    bad.write_text("measured:\n  - {sonication: 7, peak_c: 44}\n")
    widget.plan.thermometry_file.setText(str(bad))
    widget.simulate()
    assert not widget.busy and "measured[1].sonication" in widget.status.text()  # refused before simulating
    good = tmp_path / "good.yaml"
    good.write_text("measured:\n  - {sonication: 1, peak_c: 44.5}\n")
    widget.plan.thermometry_file.setText(str(good))
    widget.plan.band_samples.setValue(8)
    run(qtbot, widget, widget.simulate)
    assert widget.document["calibration"]["heating_efficiency"] > 1
    rows = widget.results.cells("prediction").cells
    assert rows and "Calibrated on heating_efficiency" in widget.results.clinical.text()
    assert "Band of the calibrated 200 CEM43 lesion" in widget.results.clinical.text()
    widget.plan.band_samples.setValue(0)  # another input: the result is dropped
    assert widget.session.result is None


def test_export_writes_the_cli_report_and_never_a_stale_one(planner, qtbot, tmp_path):
    _, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    run(qtbot, widget, widget.simulate)
    assert widget.plan.export_button.isEnabled()
    run(qtbot, widget, lambda: widget.export_plan(tmp_path / "plan"))
    qtbot.wait(300)
    assert widget.status.text() == f"plan written to {tmp_path / 'plan'}"  # the confirmation stays on screen
    widget.set_time(0.0)  # moving in time keeps it too
    assert widget.status.text() == f"plan written to {tmp_path / 'plan'}"
    written = json.loads((tmp_path / "plan" / "report.json").read_text())
    from fusplan.report import dumps_json

    assert written["sonications"] == json.loads(dumps_json(widget.document))["sonications"]
    # was null: the export says where the protocol came from (here a mapping, FAST_PROTOCOL)
    assert written["provenance"]["protocol"]["source"].startswith("a protocol mapping")
    widget.editor.set_cell(2, "value", 57)  # an edit: the result no longer matches the protocol
    assert widget.result is None and widget.document is None
    assert not widget.plan.export_button.isEnabled()
    assert widget.own_layer("temperature") is None and widget.own_layer("lesion") is None
    assert widget.teaching.steps == [] and widget.viewer.text_overlay.text == ""
    assert widget.result_view.plot.canvases == []
    widget.export_plan(tmp_path / "stale")
    assert not (tmp_path / "stale").exists() and "no current result" in widget.status.text()


def test_cancel_stops_the_worker(planner, qtbot):
    _, widget = planner
    widget.editor.load(FAST_PROTOCOL)
    widget.simulate()
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.last_error == "cancelled" and widget.result is None
    assert widget.plan.simulate_button.isEnabled()
    assert widget.own_layer("temperature") is None


def test_closing_the_dock_stops_the_worker(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = dock_planner(viewer)
    widget.editor.load(FAST_PROTOCOL)
    widget.simulate()
    runner = widget.runner
    viewer.window.remove_dock_widget(widget)  # what the dock's close button does
    assert runner.closed
    qtbot.waitUntil(lambda: not runner.busy, timeout=60_000)
    qtbot.wait(100)
    assert [layer.name for layer in viewer.layers] == []  # nothing added after closing
    again = dock_planner(viewer)
    assert again.scan_names() == [] and again.result is None
