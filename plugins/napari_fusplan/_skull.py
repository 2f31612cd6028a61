"""Qt-free skull display of a result: the (pseudo-)CT and the element entry points.

:func:`skull_layers` gives ``layer_data`` tuples (see :func:`._layers.add_layer`) in world
RAS mm: an Image of the CT the plan traced (``result.skull_ct``: the patient's registered
CT or the population template) on a 2 mm box around the head, and one Points layer per side
of the elements' outer-table entry points coloured by incidence angle (0 to the critical
angle; inactive elements grey crosses). :func:`skull_summary` is the results panel's line.
"""
from __future__ import annotations

import numpy as np

from fusplan import Grid
from fusplan import resample_to_grid

from ._layers import AXIS_LABELS, mark

#: Box of the CT layer around the target(s) (mm) and its voxel (mm).
CT_EXTENT_MM, CT_SPACING_MM = 200.0, 2.0
INACTIVE_COLOUR = "#8d8d8d"


def skull_layers(result) -> list[tuple]:
    """CT image and entry-point layers of ``result`` ([] without a skull model)."""
    if getattr(result, "skull_ct", None) is None:
        return []
    centre = np.mean([np.asarray(s.grid.centre_mm, float) for s in result.sides.values()], axis=0)
    grid = Grid.centred(centre, extent_mm=CT_EXTENT_MM, spacing_mm=CT_SPACING_MM)
    hu = resample_to_grid(result.skull_ct, grid.shape, grid.affine)
    name = "skull CT" if result.skull_ct.source == "ct" else "skull (population pseudo-CT)"
    layers = [mark((hu, {"name": name, "affine": grid.affine, "colormap": "gray", "contrast_limits": (-200.0, 2000.0),
                         "opacity": 0.6, "blending": "additive", "axis_labels": AXIS_LABELS}, "image"), "skull ct")]
    for side, s in result.sides.items():
        if s.skull is not None:
            layers.append(entry_points_layer(s.skull, side))
    return layers


def entry_points_layer(model, side: str | None) -> tuple:
    """Outer-table entry points (world RAS mm) coloured by incidence; features: incidence, SDR,
    transmission, active."""
    entry = np.asarray(model.trace.entry_ras_mm, float)
    hit = np.all(np.isfinite(entry), axis=1)
    incidence = np.asarray(model.trace.incidence_deg, float)[hit]
    active = np.asarray(model.active)[hit]
    import matplotlib

    fraction = np.clip(np.nan_to_num(incidence) / model.critical_angle_deg, 0.0, 1.0)
    colours = matplotlib.colormaps["viridis"](fraction)
    colours[~active] = matplotlib.colors.to_rgba(INACTIVE_COLOUR)
    features = {"incidence_deg": np.round(incidence, 2), "sdr": np.round(np.asarray(model.sdr)[hit], 3),
                "transmission": np.round(np.asarray(model.amplitude_transmission)[hit] ** 2, 4), "active": active}
    suffix = f" ({side})" if side else ""
    kwargs = {"name": f"element entry points{suffix}", "features": features, "face_color": colours,
              "border_color": colours, "size": 2.0, "symbol": np.where(active, "disc", "x").tolist(),
              "axis_labels": AXIS_LABELS}
    return mark((entry[hit], kwargs, "points"), f"skull entry{'_' + side if side else ''}")


def skull_summary(document: dict) -> str:
    """``"skull (population template): SDR 1.00, 1024/1024 active, ..."`` ('' without a skull block)."""
    from fusplan import skull_blocks

    parts = []
    for side, block in skull_blocks(document).items():
        sdr = "n/a" if block["sdr"] is None else f"{block['sdr']:.2f}"
        parts.append(f"skull{f' {side}' if side else ''} ({block['source']}): SDR {sdr}, "
                     f"{block['active_elements']}/{block['elements']} active elements, "
                     f"energy transmission {100 * block['energy_transmission']:.1f} %")
    return "; ".join(parts)
