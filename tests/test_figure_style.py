"""Threshold styles (fusplan.thresholds), number formatting (fusplan.formatting) and figure legibility."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from fusplan import formatting as fmt
from fusplan.thresholds import LEGEND_FACE, MEANINGS, meaning, threshold_styles


def _luminance(colour) -> float:
    """WCAG relative luminance."""
    rgb = np.array(to_rgb(colour))
    linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_threshold_gets_a_style_however_many():
    """Ten thresholds validate in a protocol: all ten are drawn (a 5th used to vanish with 4 colours)."""
    levels = [5, 10, 17, 40, 60, 100, 150, 200, 240, 300]
    styles = threshold_styles(levels)
    assert [s.threshold_cem43 for s in styles] == levels
    widths = [s.linewidth for s in styles]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]  # outer lines wider, inner on top
    assert [s.zorder for s in styles] == sorted(s.zorder for s in styles)
    known = {s.threshold_cem43: s.colour for s in styles if s.threshold_cem43 in MEANINGS}
    alone = {s.threshold_cem43: s.colour for s in threshold_styles(MEANINGS)}
    assert len(set(known.values())) == 4 and known == alone  # a known threshold keeps its colour in any company
    assert len({s.colour for s in styles if s.threshold_cem43 not in MEANINGS}) == 4  # the extra colours cycle
    assert meaning(240) == "necrotic core (console contour)" and meaning(33) is None


def test_dose_legend_swatches_read_on_their_background():
    """The 240 CEM43 swatch was white on a white legend: every swatch must contrast with the legend face."""
    from fusplan.figures import dose_legend
    from fusplan.figures.style import new_figure

    styles = threshold_styles([17, 100, 200, 240, 300])
    figure = new_figure((4, 3))
    legend = dose_legend(figure.subplots(), styles, title="dose")
    face = legend.get_frame().get_facecolor()
    assert _contrast(face, LEGEND_FACE) == pytest.approx(1.0)
    for line, style in zip(legend.get_lines(), styles):
        assert _contrast(line.get_color(), face) >= 3.0, style.label
    assert all(_contrast(text.get_color(), face) >= 4.5 for text in legend.get_texts())


def test_sdr_colours_read_on_white():
    """The SDR panel of skull.png was pale yellow on white (magma's top at SDR ~ 1)."""
    from fusplan.skull.figure import sdr_colourmap

    cmap = sdr_colourmap()
    assert min(_contrast(cmap(x), "white") for x in np.linspace(0, 1, 11)) >= 2.0


def test_numbers_are_written_one_way():
    assert fmt.temperature(52.26) == "52.3" and fmt.temperature(None) == "-"
    assert [fmt.power(w) for w in (171.0, 175.34, 0.4, 0.0123)] == ["171.0", "175.3", "0.4", "0.0123"]
    assert fmt.length(2.0) == "2.00" and fmt.volume(6.25) == "6.2" and fmt.position(-0.04) == "0.0"
    assert [fmt.dose(d) for d in (1.234e-5, 3.456, 369.4)] == ["1.2e-05", "3.46", "369"]
    assert fmt.threshold(240.0) == "240" and fmt.threshold(17.5) == "17.5"
    assert fmt.vector([1.234, -5.0, 0.0]) == "(1.2, -5.0, 0.0)" and fmt.percent(0.734) == "73"
    assert fmt.value("peak_temperature_c", 64.61) == "64.6" and fmt.value("equivalent_diameter_mm", 2.291) == "2.29"
    assert fmt.value("threshold_cem43", 200.0) == "200" and fmt.value("index", 3) == "3"
    assert fmt.value("stage", "treatment") == "treatment" and fmt.value("volume_mm3", 6.25) == "6.2"
    assert fmt.heading("peak_temperature_c") == "peak temperature (°C)"
    assert fmt.heading("equivalent_diameter_mm") == "equivalent diameter (mm)"
    assert fmt.heading("lr_mm") == "LR (mm)" and fmt.heading("threshold_cem43") == "threshold (CEM43 min)"
    assert fmt.heading("absorbed_power_w") == "absorbed power (W)"  # a key with its own number rule too
    assert fmt.heading("fraction_of_lesion") == "fraction of lesion (%)" and fmt.heading("stage") == "stage"
