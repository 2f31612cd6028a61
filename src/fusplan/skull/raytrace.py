"""Per-element ray tracing through the skull, all elements marched together.

For each element the ray from its centre to the focus is sampled (trilinear, world RAS mm)
to find the skin and the outer table (first sample >= ``bone_threshold_hu``); the
outer-table normal is the normal of the bone-threshold surface fitted through where twelve
neighbouring rays on a 4 mm ring cross it (the CT gradient direction smoothed over 4 mm, the role of Kranion's
3x3x3 gradient, without the grid-axis bias a small cubic stencil has); Snell's law bends the ray into the bone, the
refracted ray is marched to the inner table (last sample >= threshold), refracted again
into the brain. Along the bone path the mean HU, the attenuation (a function of HU), the
travel time (phase) and its uncertainty are integrated. The physics of transmission is in :mod:`.properties`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .ct import AIR_HU, SkullCT
from .properties import BoneAcoustics, interface_power_transmission, snell_cos
from .sdr import perpendicular_frames


@dataclass(frozen=True)
class TraceSettings:
    """Ray-marching settings.

    Attributes
    ----------
    bone_threshold_hu : float
        Bone starts at this HU (700 HU, the clinical SDR threshold, physics.md).
    step_mm : float
        Step of the straight march from the element to the focus (0.25 mm; the
        crossing is then interpolated linearly between samples).
    bone_step_mm : float
        Step along the refracted path inside the bone (0.1 mm, Kranion's step).
    max_bone_path_mm : float
        Longest bone path searched for the inner table (30 mm).
    normal_offset_mm : float
        Baseline of the surface normal: radius of the ring of 12 neighbour rays (4 mm), see
        :func:`surface_normals`.
    """

    bone_threshold_hu: float = 700.0
    step_mm: float = 0.25
    bone_step_mm: float = 0.1
    max_bone_path_mm: float = 30.0
    normal_offset_mm: float = 4.0


@dataclass(frozen=True, eq=False)
class RayGeometry:
    """Where a trace's rays run: what :func:`retrace` keeps (arrays of length N, world RAS mm).

    Attributes
    ----------
    centres_mm : (N, 3) ndarray
    focus_mm : (3,) ndarray
    directions : (N, 3) ndarray
        Unit, element -> focus.
    length_mm : (N,) ndarray
        Element -> focus.
    march_mm : (S,) ndarray
        Distances of the straight march's samples from the element.
    hits_skull : (N,) bool ndarray
    first, last : (N,) int ndarray
        Straight-march indices of the first and last bone sample (-1: no bone).
    entry_distance_mm : (N,) ndarray
        Element -> outer-table entry along the straight ray (NaN: no bone).
    entry_mm : (N, 3) ndarray
        Outer-table entry (the element centre where the ray meets no bone).
    cos_outer : (N,) ndarray
        Cosine of the incidence on the outer table (0 where no surface was found).
    bone_directions : (N, 3) ndarray
        Refracted direction in the bone (the bone march's direction).
    inner_normals : (N, 3) ndarray or None
        Inner-table normals at the exit (None until the bone march has found the exit).
    """

    centres_mm: np.ndarray
    focus_mm: np.ndarray
    directions: np.ndarray
    length_mm: np.ndarray
    march_mm: np.ndarray
    hits_skull: np.ndarray
    first: np.ndarray
    last: np.ndarray
    entry_distance_mm: np.ndarray
    entry_mm: np.ndarray
    cos_outer: np.ndarray
    bone_directions: np.ndarray
    inner_normals: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class RayTrace:
    """Per-element results of :func:`trace_elements` (arrays of length N, world RAS mm).

    ``hits_skull`` False leaves the skull quantities NaN; ``crosses_air`` is True when a
    sample between the outer table and the focus is <= -500 HU. ``geometry`` holds the rays
    as :func:`retrace` re-evaluates them.
    """

    directions: np.ndarray  # (N, 3) unit, element -> focus
    skin_distance_mm: np.ndarray  # element -> first head sample along the ray
    hits_skull: np.ndarray
    crosses_air: np.ndarray
    entry_ras_mm: np.ndarray  # outer-table entry
    entry_distance_mm: np.ndarray  # element -> entry along the straight ray
    outer_normals: np.ndarray  # outward unit normals at the entry
    incidence_deg: np.ndarray
    totally_reflected: np.ndarray  # beyond the critical angle of its own bone (mapping speed): nothing enters
    thickness_mm: np.ndarray  # straight-ray outer -> inner table
    exit_ras_mm: np.ndarray  # inner-table exit on the refracted path
    exit_directions: np.ndarray  # refracted direction in the brain
    bone_path_mm: np.ndarray  # refracted path length in bone
    mean_bone_hu: np.ndarray
    bone_attenuation_np: np.ndarray  # amplitude attenuation integrated along the bone path (Np)
    power_transmission: np.ndarray  # emitted -> brain, both faces, attenuation, reverberation
    power_reflection: np.ndarray  # emitted -> reflected back into the water (same incoherent layer model)
    travel_delay_s: np.ndarray  # actual - straight water travel time to the focus
    delay_uncertainty_s: np.ndarray
    focus_miss_mm: np.ndarray  # distance of the refracted exit ray from the focus
    apparent_sources_ras_mm: np.ndarray
    geometry: RayGeometry  # what retrace keeps


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Index of the first True along axis 1, -1 where none."""
    found = mask.any(axis=1)
    return np.where(found, mask.argmax(axis=1), -1)


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Index of the last True along axis 1, -1 where none."""
    found = mask.any(axis=1)
    return np.where(found, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1), -1)


def _crossing(values: np.ndarray, index: np.ndarray, threshold: float, rising: bool) -> np.ndarray:
    """Fractional sample position where ``values`` crosses ``threshold`` next to ``index``.

    ``rising``: between ``index - 1`` (below) and ``index`` (above); else between ``index``
    (above) and ``index + 1`` (below). Returns ``index`` where there is no neighbour.
    """
    rows = np.arange(len(values))
    other = np.clip(index + (-1 if rising else 1), 0, values.shape[1] - 1)
    here, there = values[rows, index], values[rows, other]
    span = here - there
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(np.abs(span) > 1e-6, (here - threshold) / span, 0.0)
    fraction = np.clip(np.nan_to_num(fraction), 0.0, 1.0)
    return index + (-fraction if rising else fraction)


def surface_normals(ct: SkullCT, points_mm: np.ndarray, directions: np.ndarray, threshold_hu: float,
                    rising: bool, offset_mm: float = 4.0, window_mm: float = 6.0, step_mm: float = 0.2) -> np.ndarray:
    """Unit normals (N, 3) of the ``threshold_hu`` surface at ``points_mm``, facing against ``directions``.

    Twelve rays parallel to each direction, on a ring of radius ``offset_mm`` around it, are
    sampled over +-``window_mm`` around the point; where each crosses the threshold (first
    rise if ``rising``, else last fall; linear between samples) gives a surface point, and
    the normal is that of the least-squares plane through them and the point itself: the
    direction of the CT gradient on the bone surface, smoothed over the ring. NaN where a
    neighbour finds no crossing (grazing rays, beyond any critical angle).
    """
    u, v = perpendicular_frames(directions)
    s = np.arange(-window_mm, window_mm + step_mm / 2, step_mm)
    angles = np.arange(12) * np.pi / 6
    ring = offset_mm * (np.cos(angles)[None, :, None] * u[:, None, :] + np.sin(angles)[None, :, None] * v[:, None, :])
    starts = points_mm[:, None, :] + ring  # (N, 12, 3)
    hu = ct.sample_hu(starts[:, :, None, :] + s[None, None, :, None] * directions[:, None, None, :])
    hu = hu.reshape(-1, len(s))
    index = _first_true(hu >= threshold_hu) if rising else _last_true(hu >= threshold_hu)
    at = _crossing(hu, np.maximum(index, 0), threshold_hu, rising=rising) * step_mm - window_mm
    at = np.where(index > (0 if rising else -1), at, np.nan).reshape(len(points_mm), -1)
    surface = np.concatenate([starts + at[..., None] * directions[:, None, :], points_mm[:, None, :]], axis=1)
    centred = surface - surface.mean(axis=1, keepdims=True)
    finite = np.all(np.isfinite(centred), axis=(1, 2))
    centred = np.where(finite[:, None, None], centred, 0.0)
    covariance = np.einsum("nki,nkj->nij", centred, centred) + (~finite)[:, None, None] * np.eye(3)
    normal = np.linalg.eigh(covariance)[1][:, :, 0]
    normal = normal * -np.sign(np.sum(normal * directions, axis=1, keepdims=True))
    return np.where(finite[:, None], normal, np.nan)


def _refract(direction: np.ndarray, gradient: np.ndarray, speed_from, speed_to):
    """Vector Snell law. Returns (cos_incidence, cos_refracted (NaN beyond critical), new direction)."""
    norm = np.linalg.norm(gradient, axis=1, keepdims=True)
    unit = np.divide(gradient, norm, out=np.zeros_like(gradient), where=norm > 0)
    dot = np.sum(direction * unit, axis=1)
    facing = -np.where(dot >= 0, 1.0, -1.0)[:, None] * unit  # normal facing the incoming ray
    cos_i = np.abs(dot)
    cos_i = np.where(norm[:, 0] > 0, cos_i, 0.0)  # no surface found: grazing
    cos_t = snell_cos(cos_i, speed_from, speed_to)
    eta = (np.asarray(speed_to, float) / np.asarray(speed_from, float))[..., None] * np.ones((len(direction), 1))
    new = eta * direction + (eta[:, 0] * cos_i - np.nan_to_num(cos_t, nan=0.0))[:, None] * facing
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    return cos_i, cos_t, new


def trace_elements(ct: SkullCT, element_centres_mm: np.ndarray, focus_ras_mm, frequency_hz: float,
                   bone: BoneAcoustics = BoneAcoustics(), settings: TraceSettings = TraceSettings()) -> RayTrace:
    """Trace every element's ray to the focus through ``ct``.

    Parameters
    ----------
    ct : SkullCT
        Sampled at subject world RAS mm.
    element_centres_mm : (N, 3) ndarray
        Element centres, world RAS mm.
    focus_ras_mm : (3,) array_like
        Where the rays converge (the target).
    frequency_hz : float
    bone : BoneAcoustics
    settings : TraceSettings

    Returns
    -------
    RayTrace
    """
    centres = np.asarray(element_centres_mm, float)
    focus = np.asarray(focus_ras_mm, float)
    to_focus = focus - centres
    length = np.linalg.norm(to_focus, axis=1)
    direction = to_focus / length[:, None]
    thr = settings.bone_threshold_hu

    # 1. straight march element -> focus
    s = np.arange(0.0, length.max() + settings.step_mm, settings.step_mm)
    hu = _straight_hu(ct, centres, direction, length, s)
    skin_index = _first_true(hu > ct.skin_threshold_hu)
    skin_distance = np.where(skin_index >= 0, s[np.maximum(skin_index, 0)], np.nan)
    above = hu >= thr
    first, last = _first_true(above), _last_true(above)
    hits = first >= 0
    first_s = _crossing(hu, np.maximum(first, 0), thr, rising=True) * settings.step_mm
    last_s = _crossing(hu, np.maximum(last, 0), thr, rising=False) * settings.step_mm
    entry_distance = np.where(hits, first_s, np.nan)
    thickness = np.where(hits, last_s - first_s, np.nan)
    entry = centres + np.nan_to_num(entry_distance)[:, None] * direction

    # 2. outer table: normal, incidence, refraction into bone
    c_refract = _refraction_speed(hu, first, last, hits, bone, thr)
    outer_normals = surface_normals(ct, entry, direction, thr, rising=True, offset_mm=settings.normal_offset_mm)
    cos_i1, _, in_bone = _refract(direction, np.nan_to_num(outer_normals), bone.speed_water_m_s, c_refract)
    incidence = np.where(hits, np.degrees(np.arccos(np.clip(cos_i1, -1, 1))), np.nan)
    geometry = RayGeometry(centres_mm=centres, focus_mm=focus, directions=direction, length_mm=length, march_mm=s,
                           hits_skull=hits, first=first, last=last, entry_distance_mm=entry_distance, entry_mm=entry,
                           cos_outer=cos_i1, bone_directions=in_bone)
    nan3 = np.where(hits[:, None], 1.0, np.nan)
    return RayTrace(directions=direction, skin_distance_mm=skin_distance, hits_skull=hits,
                    crosses_air=_crosses_air(hu, s, hits, entry_distance), entry_ras_mm=entry * nan3,
                    entry_distance_mm=entry_distance, outer_normals=outer_normals * nan3, incidence_deg=incidence,
                    thickness_mm=thickness,
                    **_through_bone(ct, geometry, c_refract, frequency_hz, bone, settings))


def retrace(ct: SkullCT, trace: RayTrace, frequency_hz: float, bone: BoneAcoustics = BoneAcoustics(),
            settings: TraceSettings = TraceSettings()) -> RayTrace:
    """``trace`` with the HU of ``ct``: its rays kept, the acoustics re-evaluated.

    The straight march, the entry, both tables' normals and the refracted direction in the
    bone stay those of ``trace``; the HU along the same straight and refracted sample points
    give the refraction speed (Snell cosines at both faces, total reflection), the bone
    path to the inner table, mean HU, attenuation, travel time and transmission, as
    :func:`trace_elements` computes them. For the population skull at another diploe ratio
    (same geometry, other diploe HU; the SDR band, physics.md).

    Parameters
    ----------
    ct : SkullCT
        Sampled at the same subject points as the skull ``trace`` was traced through.
    trace : RayTrace
    frequency_hz : float
    bone : BoneAcoustics
    settings : TraceSettings
        Those of ``trace``.

    Returns
    -------
    RayTrace
        ``trace``'s geometry (directions, skin, entry, outer normals, incidence, thickness);
        ``crosses_air``, ``totally_reflected`` and everything past the outer table from ``ct``.
    """
    g = trace.geometry
    hu = _straight_hu(ct, g.centres_mm, g.directions, g.length_mm, g.march_mm)
    c_refract = _refraction_speed(hu, g.first, g.last, g.hits_skull, bone, settings.bone_threshold_hu)
    return RayTrace(directions=trace.directions, skin_distance_mm=trace.skin_distance_mm, hits_skull=trace.hits_skull,
                    crosses_air=_crosses_air(hu, g.march_mm, g.hits_skull, g.entry_distance_mm),
                    entry_ras_mm=trace.entry_ras_mm, entry_distance_mm=trace.entry_distance_mm,
                    outer_normals=trace.outer_normals, incidence_deg=trace.incidence_deg, thickness_mm=trace.thickness_mm,
                    **_through_bone(ct, g, c_refract, frequency_hz, bone, settings))


def _straight_hu(ct: SkullCT, centres: np.ndarray, direction: np.ndarray, length: np.ndarray,
                 s: np.ndarray) -> np.ndarray:
    """HU along each element -> focus ray at distances ``s`` (-inf beyond the focus)."""
    hu = ct.sample_hu(centres[:, None, :] + s[None, :, None] * direction[:, None, :])
    return np.where(s[None, :] <= length[:, None], hu, -np.inf)


def _refraction_speed(hu: np.ndarray, first: np.ndarray, last: np.ndarray, hits: np.ndarray, bone: BoneAcoustics,
                      threshold_hu: float) -> np.ndarray:
    """Speed of the bone the ray refracts into: of the mean HU of the straight ray's bone
    samples (>= threshold, between the first and last), ``speed_bone_m_s`` without bone."""
    index = np.arange(hu.shape[1])[None, :]
    straight_bone = (hu >= threshold_hu) & (index >= first[:, None]) & (index <= last[:, None])
    with np.errstate(invalid="ignore"):
        mean_hu = np.where(hits, np.sum(np.where(straight_bone, hu, 0.0), axis=1)
                           / np.maximum(straight_bone.sum(axis=1), 1), np.nan)
    return np.where(hits, bone.speed_m_s(np.nan_to_num(mean_hu)), bone.speed_bone_m_s)


def _crosses_air(hu: np.ndarray, s: np.ndarray, hits: np.ndarray, entry_distance: np.ndarray) -> np.ndarray:
    """Rays with a sample <= :data:`AIR_HU` between the outer-table entry and the focus."""
    after_entry = s[None, :] >= np.where(hits, entry_distance, np.inf)[:, None]
    before_focus = np.isfinite(hu)  # -inf beyond the focus (:func:`_straight_hu`)
    return np.any(after_entry & before_focus & (hu <= AIR_HU), axis=1) & hits


def _through_bone(ct: SkullCT, g: RayGeometry, c_refract: np.ndarray, frequency_hz: float, bone: BoneAcoustics,
                  settings: TraceSettings) -> dict:
    """Steps 3-5 of a trace: the HU along the refracted path, the inner table, transmission
    and travel time (the :class:`RayTrace` fields they set, and ``geometry`` with the inner
    normals: sampled at the exit unless ``g`` has them)."""
    n = len(g.directions)
    hits, entry, in_bone = g.hits_skull, g.entry_mm, g.bone_directions
    thr = settings.bone_threshold_hu
    c_w = bone.speed_water_m_s
    cos_t1 = snell_cos(g.cos_outer, c_w, c_refract)

    # 3. refracted march through the bone to the inner table
    b = np.arange(0.0, settings.max_bone_path_mm + settings.bone_step_mm, settings.bone_step_mm)
    bone_hu = ct.sample_hu(entry[:, None, :] + b[None, :, None] * in_bone[:, None, :])
    bone_hu[:, 0] = np.maximum(bone_hu[:, 0], thr)  # the entry sample is bone by construction
    inner = _last_true(bone_hu >= thr)
    inner_s = _crossing(bone_hu, np.maximum(inner, 0), thr, rising=False) * settings.bone_step_mm
    bone_path = np.where(hits, inner_s, np.nan)
    within = b[None, :] <= inner_s[:, None]
    samples = np.maximum(within.sum(axis=1), 1)
    mean_hu = np.where(hits, np.sum(np.where(within, bone_hu, 0.0), axis=1) / samples, np.nan)
    speed = bone.speed_m_s(bone_hu)
    path_m = np.nan_to_num(bone_path) * 1e-3
    # path integrals as (mean over the bone samples) x (path length)
    slowness_excess = np.sum(np.where(within, 1.0 / speed - 1.0 / c_w, 0.0), axis=1) / samples * path_m
    delay_sigma = (bone.speed_uncertainty * path_m
                   * np.sum(np.where(within, (speed - c_w) / speed**2, 0.0), axis=1) / samples)
    exit_point = entry + np.nan_to_num(bone_path)[:, None] * in_bone

    # 4. inner table: refraction back into the brain (no critical angle going fast -> slow)
    c_mean = bone.speed_m_s(np.nan_to_num(mean_hu))
    if g.inner_normals is None:
        g = replace(g, inner_normals=surface_normals(ct, exit_point, in_bone, thr, rising=False,
                                                     offset_mm=settings.normal_offset_mm))
    cos_i2, cos_t2, out_dir = _refract(in_bone, np.nan_to_num(g.inner_normals), c_mean, np.full(n, c_w))

    # 5. transmission (both faces, attenuation, incoherent reverberation) and travel time
    z_w = bone.density_water_kg_m3 * c_w
    z_b = bone.density_kg_m3(np.nan_to_num(mean_hu)) * c_mean
    t_outer = interface_power_transmission(z_w, z_b, g.cos_outer, cos_t1)
    t_inner = interface_power_transmission(z_b, z_w, cos_i2, cos_t2)
    # attenuation integrated along the bone path (HU-dependent with the clinical mappings)
    attenuation = np.sum(np.where(within, bone.attenuation_np_m(bone_hu, frequency_hz), 0.0), axis=1) / samples * path_m
    loss = np.exp(-2 * attenuation)
    reverberation = 1 - (1 - t_outer) * (1 - t_inner) * loss**2  # 0 only when nothing enters the bone
    power = np.divide(t_outer * t_inner * loss, reverberation, out=np.zeros(n), where=reverberation > 0)
    power = np.where(hits, power, 1.0)
    # reflected back out: the outer face's reflection plus what the inner face sends back
    # through the outer one, summed incoherently over the reverberations as above
    # (transmitted + reflected + absorbed in bone = 1)
    back = np.divide(t_outer**2 * (1 - t_inner) * loss**2, reverberation, out=np.zeros(n), where=reverberation > 0)
    reflection = np.where(hits, np.clip((1 - t_outer) + back, 0.0, 1.0), 0.0)
    to_focus_after = g.focus_mm - exit_point
    leg = np.sum(to_focus_after * out_dir, axis=1)
    miss = np.linalg.norm(to_focus_after - leg[:, None] * out_dir, axis=1)
    entry_distance = np.nan_to_num(g.entry_distance_mm)
    water_path_mm = entry_distance + leg
    delay = np.where(hits, (water_path_mm - g.length_mm) * 1e-3 / c_w + slowness_excess
                     + np.nan_to_num(bone_path) * 1e-3 / c_w, 0.0)
    travelled = entry_distance + np.nan_to_num(bone_path)
    apparent = np.where(hits[:, None], exit_point - travelled[:, None] * out_dir, g.centres_mm)
    nan3 = np.where(hits[:, None], 1.0, np.nan)
    return dict(
        totally_reflected=hits & (g.cos_outer > 0) & np.isnan(cos_t1), exit_ras_mm=exit_point * nan3,
        exit_directions=np.where(hits[:, None], out_dir, g.directions), bone_path_mm=bone_path, mean_bone_hu=mean_hu,
        bone_attenuation_np=np.where(hits, attenuation, np.nan), power_transmission=power, power_reflection=reflection,
        travel_delay_s=delay, delay_uncertainty_s=np.where(hits, delay_sigma, 0.0),
        focus_miss_mm=np.where(hits, miss, 0.0), apparent_sources_ras_mm=apparent, geometry=g,
    )
