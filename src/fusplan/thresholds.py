"""Thermal-dose thresholds: what each one means and how every figure draws it.

The one place for both (figures, teaching text, the plugin's layers and the report's
``corresponds_to`` read them from here):

- :data:`INJURY_CEM43` (17) and :data:`ABLATION_CEM43` (240): the two contours clinical
  consoles draw (Sapareto & Dewey 1984; console practice);
- :data:`DAY1_T2_CEM43` (100) and :data:`DAY1_T1_CEM43` (200): the contours that matched
  the day-1 T2 and T1 lesions (Huang et al. 2018, JMRI, PMC6181766).

:func:`threshold_styles` gives every threshold of a protocol a colour (fixed for the
four above, then cycling through :data:`EXTRA_COLOURS`, so any number of thresholds is
drawn) and a line width: the outermost (lowest) contour widest, each inner one narrower
and drawn on top, so contours that run together (100, 200 and 240 CEM43 lie within a
fraction of a millimetre of each other) read as one striped line with every colour
visible. The colours are bright, for contours drawn over an MRI or a dark field;
legends of these lines use a dark background (:data:`LEGEND_FACE`).
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable

#: Outer edge of reversible damage: a console contour (CEM43 min).
INJURY_CEM43 = 17.0
#: Contour that matched the day-1 T2 lesion (Huang et al. 2018), CEM43 min.
DAY1_T2_CEM43 = 100.0
#: Contour that matched the day-1 T1 lesion (Huang et al. 2018), CEM43 min.
DAY1_T1_CEM43 = 200.0
#: Coagulation, the necrotic core: a console contour (CEM43 min).
ABLATION_CEM43 = 240.0

#: What each known threshold corresponds to clinically (the report's ``corresponds_to``).
MEANINGS = {
    ABLATION_CEM43: "necrotic core (console contour)",
    DAY1_T1_CEM43: "day-1 T1 lesion (Huang 2018)",
    DAY1_T2_CEM43: "day-1 T2 lesion (Huang 2018)",
    INJURY_CEM43: "outer edge of reversible damage (console contour)",
}
#: Short legend names of the known thresholds.
SHORT_MEANINGS = {
    ABLATION_CEM43: "necrotic core",
    DAY1_T1_CEM43: "day-1 T1 lesion",
    DAY1_T2_CEM43: "day-1 T2 lesion",
    INJURY_CEM43: "reversible injury edge",
}
#: Contour colour of each known threshold.
COLOURS = {INJURY_CEM43: "#00e5ff", DAY1_T2_CEM43: "#76ff03", DAY1_T1_CEM43: "#ff4081", ABLATION_CEM43: "#ffffff"}
#: Colours of other thresholds, in ascending threshold order, cycled.
EXTRA_COLOURS = ("#ffab00", "#b388ff", "#ff6e40", "#64ffda")
#: Background of legends that show these lines (the colours are made for dark images).
LEGEND_FACE = "#262626"
#: Line widths (points) of the outermost and innermost contour.
WIDEST_LINE, NARROWEST_LINE = 5.2, 1.0


@dataclass(frozen=True)
class ThresholdStyle:
    """How one dose threshold is drawn and named.

    ``zorder`` grows inwards (higher thresholds on top of the wider outer lines).
    """

    threshold_cem43: float
    colour: str
    linewidth: float
    zorder: float
    meaning: str | None

    @property
    def label(self) -> str:
        """Legend text: ``"240 CEM43: necrotic core"``."""
        short = SHORT_MEANINGS.get(self.threshold_cem43)
        return f"{self.threshold_cem43:g} CEM43" + (f": {short}" if short else "")


def meaning(threshold_cem43: float) -> str | None:
    """What a dose threshold corresponds to clinically (None if it is not a known one)."""
    return MEANINGS.get(float(threshold_cem43))


def threshold_styles(thresholds_cem43: Iterable[float]) -> list[ThresholdStyle]:
    """One style per distinct threshold, in ascending order (outermost contour first)."""
    levels = sorted({float(t) for t in thresholds_cem43})
    n = len(levels)
    styles, extra = [], 0
    for rank, level in enumerate(levels):
        colour = COLOURS.get(level)
        if colour is None:
            colour, extra = EXTRA_COLOURS[extra % len(EXTRA_COLOURS)], extra + 1
        width = WIDEST_LINE - (WIDEST_LINE - NARROWEST_LINE) * rank / (n - 1) if n > 1 else 1.6
        styles.append(ThresholdStyle(level, colour, round(width, 2), 2.0 + rank, meaning(level)))
    return styles
