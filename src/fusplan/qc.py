"""Quality-control figure of a targeting result (matplotlib, Agg backend, lazy import).

One row per target: axial, coronal and sagittal planes of the subject's AC-PC
frame through the target, and the midsagittal plane through AC and PC. Thalamic
nuclei of the registered atlas are outlined (the central lateral nucleus, or the
target's nucleus, highlighted), the target is a red cross, AC and PC are marked
(filled when they lie within 1.5 mm of the plane, hollow when projected onto it).
Axes are AC-PC millimetres; orientation letters sit at the panel edges. Letters,
labels and the highlighted outline carry a black halo, so they stay readable on
bright tissue and the highlighted outline covers the other outlines it meets
(only the legend's colours appear).
"""
from __future__ import annotations

import os

import numpy as np

from .io import Scan

from .spatial import resample
from .targeting import TargetingResult

# (name, in-plane AC-PC axes (horizontal, vertical), fixed axis, edge letters (left, right, bottom, top))
_PLANES = (
    ("axial", (0, 1), 2, ("L", "R", "P", "A")),
    ("coronal", (0, 2), 1, ("L", "R", "I", "S")),
    ("sagittal", (1, 2), 0, ("P", "A", "I", "S")),
)
_AXIS_NAMES = ("x", "y", "z")


def _plane(result: TargetingResult, scan: Scan, centre_acpc: np.ndarray, axes_pair, fixed: int, extent_mm: float, spacing_mm: float):
    frame = result.frame
    n = int(round(extent_mm / spacing_mm)) + 1
    offsets = (np.arange(n) - (n - 1) / 2) * spacing_mm
    u_axis = frame.axes[:, axes_pair[0]]
    v_axis = frame.axes[:, axes_pair[1]]
    w_axis = frame.axes[:, fixed]
    origin = frame.to_ras(centre_acpc) - (n - 1) / 2 * spacing_mm * (u_axis + v_axis)
    affine = np.eye(4)
    affine[:3, 0] = u_axis * spacing_mm
    affine[:3, 1] = v_axis * spacing_mm
    affine[:3, 2] = w_axis * spacing_mm
    affine[:3, 3] = origin
    image = resample(scan.data, scan.affine, (n, n, 1), affine, order=1)[:, :, 0]
    labels = result.labels_on((n, n, 1), affine)[:, :, 0]
    h = centre_acpc[axes_pair[0]] + offsets
    v = centre_acpc[axes_pair[1]] + offsets
    return image, labels, h, v


def targeting_figure(result: TargetingResult, scan: Scan, path: str | os.PathLike | None = None, extent_mm: float = 40.0,
                     spacing_mm: float = 0.4):
    """Draw the targeting QC figure.

    Parameters
    ----------
    result : TargetingResult
    scan : Scan
        The scan the targets were placed on.
    path : path-like, optional
        Save the figure there as PNG.
    extent_mm, spacing_mm : float
        Field of view and sampling of each panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import patheffects
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    halo = [patheffects.withStroke(linewidth=3, foreground="black")]

    frame = result.frame
    names = result.label_names
    highlight = {"CL"} | {t.name for t in result.targets}
    targets = list(result.targets)
    figure = Figure(figsize=(16, 4.3 * len(targets) + 0.8))
    axes_grid = figure.subplots(len(targets), 4, squeeze=False)
    landmarks_acpc = {key: frame.to_acpc(result.landmarks[key]) for key in ("AC", "PC")}
    for row, target in enumerate(targets):
        views = [(name, pair, fixed, letters, target.acpc_mm, extent_mm) for name, pair, fixed, letters in _PLANES]
        views.append(("midsagittal", (1, 2), 0, ("P", "A", "I", "S"), np.zeros(3), extent_mm * 1.25))
        for col, (name, pair, fixed, letters, centre, extent) in enumerate(views):
            ax = axes_grid[row, col]
            image, labels, h, v = _plane(result, scan, np.asarray(centre, float), pair, fixed, extent, spacing_mm)
            low, high = np.percentile(image, [1, 99.5])
            ax.imshow(image.T, origin="lower", cmap="gray", vmin=low, vmax=high if high > low else low + 1,
                      extent=(h[0], h[-1], v[0], v[-1]), interpolation="bilinear")
            values = [int(value) for value in np.unique(labels) if value != 0]
            for value in sorted(values, key=lambda value: names.get(value) in highlight):  # highlighted last
                if names.get(value) in highlight:
                    contours = ax.contour(h, v, (labels == value).T.astype(float), levels=[0.5], colors="yellow",
                                          linewidths=1.8, zorder=3)
                    contours.set_path_effects(halo + [patheffects.Normal()])
                else:
                    ax.contour(h, v, (labels == value).T.astype(float), levels=[0.5], colors="deepskyblue",
                               linewidths=0.7, zorder=2)
            ax.plot(target.acpc_mm[pair[0]], target.acpc_mm[pair[1]], "+", color="red", ms=16, mew=2.2, zorder=4)
            for key, point in landmarks_acpc.items():
                if h[0] <= point[pair[0]] <= h[-1] and v[0] <= point[pair[1]] <= v[-1]:
                    in_plane = abs(point[fixed] - centre[fixed]) <= 1.5
                    ax.plot(point[pair[0]], point[pair[1]], "o", ms=7, mew=1.5, color="lime",
                            mfc="lime" if in_plane else "none", zorder=4)
                    ax.annotate(key, (point[pair[0]], point[pair[1]]), xytext=(4, 4), textcoords="offset points",
                                color="lime", fontsize=10, fontweight="bold", path_effects=halo, zorder=5)
            if name == "midsagittal":
                ac, pc = landmarks_acpc["AC"], landmarks_acpc["PC"]
                ax.plot([pc[1], ac[1]], [pc[2], ac[2]], "-", color="lime", lw=0.8)
            side = f" {target.side}" if target.side else ""
            where = f"{_AXIS_NAMES[fixed]} = {centre[fixed]:.1f} mm"
            ax.set_title(f"{target.name}{side}: {name} ({where})", fontsize=10)
            ax.set_xlabel(f"{_AXIS_NAMES[pair[0]]} (AC-PC mm)", fontsize=8)
            ax.set_ylabel(f"{_AXIS_NAMES[pair[1]]} (AC-PC mm)", fontsize=8)
            ax.tick_params(labelsize=7)
            style = dict(color="white", fontsize=13, fontweight="bold", transform=ax.transAxes, path_effects=halo,
                         zorder=5)
            ax.text(0.02, 0.5, letters[0], ha="left", va="center", **style)
            ax.text(0.98, 0.5, letters[1], ha="right", va="center", **style)
            ax.text(0.5, 0.02, letters[2], ha="center", va="bottom", **style)
            ax.text(0.5, 0.98, letters[3], ha="center", va="top", **style)
    reg = result.registration
    facts = (f"atlas {result.atlas}, registration similarity {reg.similarity:.3f} ({reg.contrast}), "
             f"AC-PC {frame.acpc_length_mm:.1f} mm, landmarks: {result.landmark_source}")
    figure.suptitle(f"fusplan targeting QC: {', '.join(f'{t.name} {t.side}' for t in targets)}\n{facts}", fontsize=11)
    handles = [Line2D([], [], color="yellow", lw=1.6, label="CL / target nucleus"),
               Line2D([], [], color="deepskyblue", lw=0.6, label="other nuclei"),
               Line2D([], [], color="red", marker="+", ls="", ms=10, mew=2, label="target"),
               Line2D([], [], color="lime", marker="o", ls="", label="AC / PC (hollow: projected)")]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0.03, 1, 0.95))
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
