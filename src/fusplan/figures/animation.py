"""The procedure as a GIF: the temperature on the three planes with the focus curve."""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np

from ..grid import Grid
from ..timeline import Timeline
from .planes import PLANES, background_limits, label_plane_axes, panel_extent
from .style import STAGE_COLOURS, new_figure


def write_animation(
    path: str | os.PathLike,
    timeline: Timeline,
    grid: Grid,
    times_s: Sequence[float],
    temperature_planes: Sequence[Mapping[str, np.ndarray]],
    *,
    background: Mapping[str, np.ndarray] | None = None,
    half_width_mm: float = 12.0,
    vmax_c: float | None = None,
    frame_ms: int = 120,
    dpi: int = 96,
) -> Path:
    """Write a GIF of the temperature field through the procedure.

    Each frame shows the temperature over the MRI on the three planes (clear at
    38 °C, fading in to opaque at 42 °C), a clock, the current stage, and the
    focus curve with a cursor. One fixed palette serves every frame (no flicker,
    small file).

    Parameters
    ----------
    path : path-like
        Output ``.gif`` (written atomically).
    timeline : Timeline
        The side's sonications and focus curve (``result.timeline(side)``).
    grid : Grid
    times_s : sequence of float
        Time of each frame.
    temperature_planes : sequence of mapping plane name -> 2D array
        The field on the three planes at each time (:func:`field_planes` with
        ``half_width_mm``).
    background : mapping plane name -> 2D array, optional
        The MRI on the planes.
    vmax_c : float, optional
        Top of the colour scale (default the hottest frame, rounded up).
    frame_ms : int
        Display time of each frame.
    dpi : int
        Resolution: at the default 96 dpi the smallest text (9 pt) is 12 px high.

    Returns
    -------
    Path
    """
    import matplotlib
    from matplotlib.colors import ListedColormap
    from PIL import Image

    from ..io import atomic_output

    focus_t, focus_c = timeline.focus.time_s, timeline.focus.temperature_c
    hottest = max(float(np.max(p[name])) for p in temperature_planes for name in p)
    vmax = vmax_c or float(np.ceil(max(hottest, 44.0)))
    # inferno without its near-black end, so a barely warm voxel is visible over the MRI
    cmap = ListedColormap(matplotlib.colormaps["inferno"](np.linspace(0.3, 1.0, 256)), name="warm")
    figure = new_figure((9, 4.8))
    spec = figure.add_gridspec(2, 3, height_ratios=(3.0, 1.0))
    plane_axes = [figure.add_subplot(spec[0, c]) for c in range(3)]
    curve_ax = figure.add_subplot(spec[1, :])
    limits = background_limits(background) if background else None
    images = []
    for ax, plane in zip(plane_axes, PLANES):
        first = temperature_planes[0][plane.name]
        extent = panel_extent(first, grid.spacing_mm)
        if background is not None:
            ax.imshow(background[plane.name].T, origin="lower", cmap="gray", vmin=limits[0], vmax=limits[1],
                      extent=panel_extent(background[plane.name], grid.spacing_mm))
        else:
            ax.set_facecolor("black")
        images.append(ax.imshow(first.T, origin="lower", cmap=cmap, vmin=38.0, vmax=vmax, extent=extent,
                                alpha=_opacity(first).T, interpolation="nearest"))
        ax.set_xlim(-half_width_mm, half_width_mm)
        ax.set_ylim(-half_width_mm, half_width_mm)
        ax.set_title(plane.name, fontsize=11)
        label_plane_axes(ax, plane)
        ax.xaxis.label.set_size(9)
        ax.yaxis.label.set_size(9)
        ax.tick_params(labelsize=9)
    bar = figure.colorbar(images[-1], ax=plane_axes, shrink=0.85, pad=0.01)
    bar.set_label("temperature (°C)", fontsize=10)
    bar.ax.tick_params(labelsize=9)
    for window in timeline.windows:
        curve_ax.axvspan(window.start_s, window.on_end_s, color=STAGE_COLOURS.get(window.stage, "grey"),
                         alpha=0.3, lw=0)
    curve_ax.plot(focus_t, focus_c, color="black", lw=1)
    cursor = curve_ax.axvline(times_s[0], color="#d32f2f", lw=1.5)
    curve_ax.set_xlim(focus_t[0], focus_t[-1])
    curve_ax.set_xlabel("time (s)", fontsize=9)
    curve_ax.set_ylabel("focus (°C)", fontsize=9)
    curve_ax.tick_params(labelsize=9)
    clock = figure.text(0.5, 0.995, "", ha="center", va="top", fontsize=12)
    figure.get_layout_engine().set(rect=(0, 0, 1, 0.95))
    figure.set_dpi(dpi)
    figure.canvas.draw()  # lay out once, then freeze the layout and draw only what moves (blitting)
    figure.set_layout_engine("none")
    for artist in (*images, cursor, clock):
        artist.set_animated(True)
    figure.canvas.draw()
    static = figure.canvas.copy_from_bbox(figure.bbox)

    def render(t, planes):
        for image, plane in zip(images, PLANES):
            image.set_data(planes[plane.name].T)
            image.set_alpha(_opacity(planes[plane.name]).T)
        cursor.set_xdata([t, t])
        clock.set_text(f"t = {int(t // 60)}:{t % 60:04.1f}  |  {timeline.stage_at(t)}  |  "
                       f"hottest {max(float(planes[n].max()) for n in planes):.1f} °C")
        figure.canvas.restore_region(static)
        for artist in (*images, cursor, clock):
            figure.draw_artist(artist)
        return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3])

    # One fixed palette for every frame (fast, no flicker): greys for the MRI and text, the
    # colour map over mid-grey and white (what the overlay looks like), and the curve's colours.
    grey = np.linspace(0, 1, 72)[:, None].repeat(3, axis=1)
    warm = cmap(np.linspace(0, 1, 60))[:, :3]
    blends = [warm * a + g * (1 - a) for a, g in ((1.0, 0.0), (0.6, 0.5), (0.6, 1.0))]
    shading = [np.asarray(matplotlib.colors.to_rgb(c)) * 0.3 + 0.7 for c in STAGE_COLOURS.values()]
    extra = [matplotlib.colors.to_rgb(c) for c in ("#d32f2f", "#1f77b4")]
    colours = np.clip(np.vstack([grey, *blends, shading, extra]), 0, 1)[:256]
    palette = Image.new("P", (1, 1))
    palette.putpalette((colours * 255).round().astype(np.uint8).ravel().tolist())
    frames = [render(t, planes).quantize(palette=palette, dither=Image.Dither.NONE)
              for t, planes in zip(times_s, temperature_planes)]
    figure.clear()
    path = Path(path)
    with atomic_output(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def _opacity(section: np.ndarray, floor_c: float = 38.0, full_c: float = 42.0) -> np.ndarray:
    """Opacity of the temperature overlay: clear below ``floor_c``, 0.9 from ``full_c`` up."""
    return 0.9 * np.clip((np.asarray(section, dtype=float) - floor_c) / (full_c - floor_c), 0.0, 1.0)


def animation_times(timeline: Timeline, n_frames: int = 90) -> np.ndarray:
    """Frame times over the procedure, denser while sonicating than while cooling.

    About 55 % of the frames fall on sonications (which are short but where the
    field changes fast); the rest share the cooling periods. Always includes 0 and
    the end.
    """
    windows = timeline.windows
    if not windows:
        return np.linspace(0.0, 1.0, 2)
    on_total = sum(w.on_end_s - w.start_s for w in windows)
    off_total = sum(w.end_s - w.on_end_s for w in windows)
    n_on, n_off = int(round(0.55 * n_frames)), n_frames - int(round(0.55 * n_frames))
    times = [0.0]
    for w in windows:
        k_on = max(2, int(round(n_on * (w.on_end_s - w.start_s) / max(on_total, 1e-9))))
        times.extend(np.linspace(w.start_s, w.on_end_s, k_on + 1)[1:])
        if w.end_s > w.on_end_s:
            k_off = max(1, int(round(n_off * (w.end_s - w.on_end_s) / max(off_total, 1e-9))))
            # cooling is fast at first: space frames geometrically
            offsets = (w.end_s - w.on_end_s) * (np.geomspace(1, 11, k_off) - 1) / 10
            times.extend(w.on_end_s + offsets[1:] if k_off > 1 else [w.end_s])
            times.append(w.end_s)
    return np.unique(np.round(times, 3))
