"""The focal spot of a heat source or intensity field, in dB, on three planes."""
from __future__ import annotations

import numpy as np

from ..grid import Grid
from .style import new_figure


def focal_figure(q_or_intensity: np.ndarray, grid: Grid, path=None, title: str | None = None):
    """Three orthogonal planes through the peak, in dB, with -3 and -6 dB contours.

    Parameters
    ----------
    q_or_intensity : ndarray of ``grid.shape``
        Heat source or intensity (any non-negative power-like quantity).
    path : path-like, optional
        Save the figure there (PNG/PDF by extension).

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = np.asarray(q_or_intensity, dtype=float)
    peak = np.unravel_index(np.argmax(data), data.shape)
    db = 10 * np.log10(np.maximum(data / data.max(), 1e-3))
    coords = [((np.arange(n) - (n - 1) / 2) * grid.spacing_mm) for n in grid.shape]
    centre = grid.index_to_world(np.asarray(peak, float))
    names = ("LR (axis 0)", "AP (axis 1)", "SI (axis 2)")
    planes = [(0, 1, db[:, :, peak[2]]), (0, 2, db[:, peak[1], :]), (1, 2, db[peak[0], :, :])]
    fig = new_figure((12, 4))
    axs = fig.subplots(1, 3)
    for ax, (i, j, img) in zip(axs, planes):
        half = grid.spacing_mm / 2  # imshow extent is voxel edges
        extent = (coords[i][0] - half, coords[i][-1] + half, coords[j][0] - half, coords[j][-1] + half)
        im = ax.imshow(img.T, origin="lower", extent=extent, cmap="inferno", vmin=-30, vmax=0)
        ax.contour(coords[i], coords[j], img.T, levels=[-6, -3], colors=["cyan", "white"], linewidths=1)
        ax.set_xlabel(f"{names[i]}, mm from grid centre")
        ax.set_ylabel(f"{names[j]}, mm from grid centre")
    fig.colorbar(im, ax=axs, label="dB re peak (contours -6 cyan, -3 white)", shrink=0.8)
    fig.suptitle(title or f"Focal intensity, peak at RAS ({centre[0]:.1f}, {centre[1]:.1f}, {centre[2]:.1f}) mm")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
