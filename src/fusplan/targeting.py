"""Atlas-based targeting: CLp (and other) targets, AC/PC/MCP and the AC-PC frame.

Everything is computed in the template space where the atlas lives and mapped
to the subject through the registration (:mod:`fusplan.registration`).

Rules (deterministic, documented in the README):

- **CLp** (default target, Morel atlas): the posterior half of the Morel central
  lateral nucleus (CL, labels 5 left / 105 right). In the template's AC-PC frame
  (from the template AFIDs), the CL voxels of one side are split at the median of
  their AC-PC ``y``; CLp is the centroid of the voxels posterior to it. The
  resulting template point (about 2 mm anterior to the PC plane, 8 mm above the
  AC-PC line) lies inside the CL label on both sides. The point is mapped to the
  subject through the registration (mapping a point through the smooth inverse
  warp is the cleanest and most robust choice: no voxel re-binning in the subject).
  Rationale: Jeanmonod et al. (2012) describe CLp as the posterior part of CL;
  a volume split keeps the rule independent of the atlas grid and of the
  template's AC-PC tilt, and puts the target at the level of the PC.
- **Any atlas label** (``target="VPLp"`` or a full name): centroid of that label's
  voxels on the requested side, in template space, mapped to the subject.
- **AC-PC coordinates** (``acpc_mm=(x, y, z)``, stereotactic formula targeting):
  ``x`` is the lateral distance (its sign is set by the side: right positive,
  left negative), ``y``, ``z`` as given, in the subject's AC-PC frame.

The subject's AC, PC and MCP are the template AFIDs mapped through the
registration (or the user's ``ac_mm`` / ``pc_mm``). The midsagittal plane is the
least-squares plane containing the AC-PC line that best fits the mapped midline
AFIDs (the ten midline fiducials plus the midpoints of the eleven left/right
pairs), so a user override of AC/PC keeps the same anatomical midline. The frame itself
is :class:`fusplan.acpc.AcpcFrame` (also importable from here).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence

import numpy as np

from .acpc import AcpcFrame, rounded
from .atlas import Atlas, load_atlas
from .errors import FusplanInputError
from .grid import Grid
from .io import Scan
from .spatial import voxel_to_world, world_to_voxel
from .registration import Registration, load_registration, register
from .template import prepared_template
from .vocabulary import CLP_TARGET, DEFAULT_ATLAS, DEFAULT_TARGET, SIDES, parse_sides

#: AFIDs fiducials that lie on the midsagittal plane.
MIDLINE_AFIDS = (
    "AC", "PC", "infracollicular sulcus", "PMJ", "superior interpeduncular fossa", "culmen",
    "intermammillary sulcus", "pineal gland", "genu of CC", "splenium of CC",
)
#: Plausible AC-PC distance (mm) in an adult brain.
ACPC_LENGTH_RANGE_MM = (20.0, 35.0)


@dataclass(frozen=True, eq=False)
class Target:
    """A planned target: ``name``, ``side`` and its position in world RAS and AC-PC mm."""

    name: str
    side: str | None
    ras_mm: np.ndarray
    acpc_mm: np.ndarray

    def to_dict(self) -> dict:
        """Contract entry ``{"name", "side", "ras_mm", "acpc_mm"}``."""
        return {"name": self.name, "side": self.side, "ras_mm": rounded(self.ras_mm), "acpc_mm": rounded(self.acpc_mm)}


def _template_midline(landmarks: dict) -> np.ndarray:
    points = [landmarks[name] for name in MIDLINE_AFIDS if name in landmarks]
    for name in landmarks:
        if name.startswith("R ") and ("L " + name[2:]) in landmarks:
            points.append((landmarks[name] + landmarks["L " + name[2:]]) / 2)
    return np.asarray(points, dtype=float)


def template_frame(atlas: Atlas) -> AcpcFrame:
    """AC-PC frame of the atlas template (from its AFIDs)."""
    return AcpcFrame.from_landmarks(atlas.landmarks["AC"], atlas.landmarks["PC"], _template_midline(atlas.landmarks))


def _label_points(atlas: Atlas, indices: Sequence[int]) -> np.ndarray:
    voxels = np.argwhere(np.isin(atlas.labels, list(indices)))
    return voxel_to_world(atlas.affine, voxels)


def clp_template_point(atlas: Atlas, side: str) -> np.ndarray:
    """Template world mm of CLp on ``side`` (see the module docstring for the rule)."""
    labels = atlas.find_labels("CL", side)
    points = _label_points(atlas, [label.index for label in labels])
    y = template_frame(atlas).to_acpc(points)[:, 1]
    return points[y < np.median(y)].mean(axis=0)


def label_template_point(atlas: Atlas, name: str, side: str | None) -> np.ndarray:
    """Template world mm of the centroid of atlas label ``name`` on ``side``."""
    labels = atlas.find_labels(name, side)
    return _label_points(atlas, [label.index for label in labels]).mean(axis=0)


@dataclass(frozen=True, eq=False)
class TargetingResult:
    """Targets, landmarks and AC-PC frame of one subject, with the registration behind them.

    Attributes
    ----------
    targets : list of Target
    frame : AcpcFrame
    landmarks : dict of str to ndarray
        ``AC``, ``PC``, ``MCP`` in world RAS mm.
    registration : Registration
    atlas : str
        Atlas name (``"morel"`` or ``"najdenovska"``).
    landmark_source : str
        ``"atlas"`` (mapped AFIDs) or ``"user"`` (AC and/or PC given).
    rule : dict
        How the targets were placed: ``{"target": name, "acpc_mm": (x, y, z) or None}``.
    """

    targets: list[Target]
    frame: AcpcFrame
    landmarks: dict[str, np.ndarray]
    registration: Registration
    atlas: str
    landmark_source: str = "atlas"
    rule: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _atlas(self) -> Atlas:
        return load_atlas(self.atlas)

    def target(self, side: str | None = None) -> Target:
        """The target on ``side`` (the first one if ``side`` is None)."""
        for target in self.targets:
            if side is None or target.side == side:
                return target
        raise FusplanInputError(f"no target on side {side!r}; have {[t.side for t in self.targets]}")

    @property
    def label_names(self) -> dict[int, str]:
        """Label index -> abbreviation (the same abbreviation on both sides, e.g. ``"CL"``)."""
        return self._atlas().abbreviations

    @property
    def label_hemispheres(self) -> dict[int, str]:
        """Label index -> ``"left"`` / ``"right"``."""
        return {label.index: label.hemisphere for label in self._atlas().label_table}

    def labels_on(self, shape, affine) -> np.ndarray:
        """Atlas labels pulled onto any world grid ``(shape, voxel -> RAS affine)``, nearest neighbour."""
        atlas = self._atlas()
        affine = np.asarray(affine, dtype=float)
        shape = tuple(int(n) for n in shape)
        out = np.zeros(shape, dtype=np.int16)
        # only the block of the grid near the thalamus can hold labels
        index = np.argwhere(atlas.labels > 0)
        lo, hi = index.min(axis=0) - 1, index.max(axis=0) + 1
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])], float)
        template_corners = voxel_to_world(atlas.affine, corners)
        centre = template_corners.mean(axis=0)
        template_corners = template_corners + np.sign(template_corners - centre) * 15.0  # margin for the warp
        subject_corners = self.registration.template_to_subject(template_corners)
        grid_corners = world_to_voxel(affine, subject_corners)
        start = np.clip(np.floor(grid_corners.min(axis=0)).astype(int), 0, shape)
        stop = np.clip(np.ceil(grid_corners.max(axis=0)).astype(int) + 1, 0, shape)
        if np.any(stop <= start):
            return out
        ranges = [np.arange(a, b, dtype=np.float32) for a, b in zip(start, stop)]
        block = np.stack(np.meshgrid(*ranges, indexing="ij"), -1)
        world = voxel_to_world(affine, block)
        template = self.registration.subject_to_template(world.reshape(-1, 3))
        voxel = np.rint(world_to_voxel(atlas.affine, template)).astype(int)
        inside = np.all((voxel >= 0) & (voxel < np.asarray(atlas.labels.shape)), axis=1)
        values = np.zeros(len(voxel), dtype=np.int16)
        values[inside] = atlas.labels[tuple(voxel[inside].T)]
        out[tuple(slice(a, b) for a, b in zip(start, stop))] = values.reshape(block.shape[:3])
        return out

    def labels_on_grid(self, grid: Grid) -> np.ndarray:
        """Atlas labels on a :class:`~fusplan.grid.Grid` (nearest neighbour), int16 of ``grid.shape``."""
        return self.labels_on(grid.shape, grid.affine)

    @property
    def nucleus_volumes_mm3(self) -> dict[int, float]:
        """Label index -> volume of the whole nucleus in the subject (mm^3).

        The atlas voxel volume times the registration's Jacobian determinant,
        summed over the nucleus' atlas voxels.
        """
        if "volumes" not in self._cache:
            atlas = self._atlas()
            voxel_mm3 = abs(float(np.linalg.det(atlas.affine[:3, :3])))
            volumes = {}
            labels = atlas.labels
            index = np.argwhere(labels > 0)
            values = labels[tuple(index.T)]
            points = voxel_to_world(atlas.affine, index)
            det = self.registration.jacobian_determinant(points)
            sums = np.bincount(values, weights=det)
            for label in atlas.label_table:
                volumes[label.index] = float(sums[label.index] * voxel_mm3) if label.index < len(sums) else 0.0
            self._cache["volumes"] = volumes
        return dict(self._cache["volumes"])

    def to_dict(self) -> dict:
        """Contract ``targets`` / ``landmarks`` part."""
        return {
            "targets": [target.to_dict() for target in self.targets],
            "landmarks": {name: rounded(self.landmarks[name]) for name in ("AC", "PC", "MCP")},
        }


def check_target(atlas: str | Atlas, target: str, sides) -> None:
    """Check, before any registration, that ``atlas`` can place ``target`` on ``sides``.

    Cheap (reads the label table), so a typo fails before a registration of a
    minute: :data:`~fusplan.vocabulary.CLP_TARGET` needs a central lateral (CL)
    label; any other target must name a label of the atlas on every side.

    Raises
    ------
    FusplanInputError
        An unknown atlas, side or label (naming the known labels), or CLp on an
        atlas without CL.
    """
    atlas = atlas if isinstance(atlas, Atlas) else load_atlas(atlas)
    sides = parse_sides(sides)
    if target == CLP_TARGET:
        if not any(label.abbreviation == "CL" for label in atlas.label_table):
            raise FusplanInputError(f"atlas {atlas.name!r} has no central lateral (CL) label, so no CLp target; "
                                    "give another target (an atlas label) or AC-PC coordinates")
        return
    for side in sides:
        atlas.find_labels(target, side)  # raises naming the known labels


def _as_point(value, name: str) -> np.ndarray:
    point = np.asarray(value, dtype=float)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise FusplanInputError(f"{name} must be three finite numbers (mm), got {value!r}")
    return point


def _inside_fov(scan: Scan, point: np.ndarray) -> bool:
    index = scan.world_to_voxel(point)
    return bool(np.all(index >= -0.5) and np.all(index <= np.asarray(scan.shape) - 0.5))


def _in_template_brain(registration: Registration, atlas: Atlas, point: np.ndarray) -> bool:
    template = prepared_template(atlas, 2.0)
    t = registration.subject_to_template(point)
    index = np.rint(np.linalg.solve(template.affine[:3, :3], t - template.affine[:3, 3])).astype(int)
    if np.any(index < 0) or np.any(index >= np.asarray(template.brain.shape)):
        return False
    return bool(template.brain[tuple(index)])


def locate_targets(
    scan: Scan,
    atlas: str = DEFAULT_ATLAS,
    sides=SIDES,
    target: str = DEFAULT_TARGET,
    acpc_mm=None,
    ac_mm=None,
    pc_mm=None,
    registration: Registration | str | os.PathLike | None = None,
    progress: Callable[[float, str], None] | None = None,
    *,
    settings="standard",
) -> TargetingResult:
    """Register the atlas to ``scan`` and place targets, AC/PC/MCP and the AC-PC frame.

    Parameters
    ----------
    scan : Scan
        Subject head scan (any orientation; T1 preferred).
    atlas : {"morel", "najdenovska"}
    sides : sequence of {"left", "right"} or "both"
        Read by :func:`fusplan.vocabulary.parse_sides` (any case; ``"left;right"``).
    target : str
        ``"CLp"`` (Morel only; see the module docstring) or any atlas label
        abbreviation / full name (its centroid). Ignored for placement when
        ``acpc_mm`` is given (then it only names the target; default name ``"acpc"``).
    acpc_mm : (x, y, z), optional
        Stereotactic formula target in the subject's AC-PC frame; ``|x|`` is the
        lateral distance, its sign follows the side.
    ac_mm, pc_mm : (3,), optional
        User AC / PC in world RAS mm, overriding the mapped ones; the frame and
        AC-PC targets follow (atlas targets keep their world position).
    registration : Registration or path, optional
        A registration of this scan (e.g. from a previous run, ``.npz``) to reuse.
    progress : callable(fraction, message), optional
        Progress reports; raising inside it cancels.
    settings : str or RegistrationSettings
        Registration settings preset (``"standard"``, ``"fast"``).

    Returns
    -------
    TargetingResult

    Raises
    ------
    FusplanInputError
        Unknown atlas / label / side, bad coordinates, a registration that does
        not belong to the scan, or a failed registration (not a head, AC-PC
        length outside 20-35 mm, targets outside the brain or the field of view).
    """
    sides = parse_sides(sides)
    atlas_obj = load_atlas(atlas)
    name = scan.path.name if scan.path is not None else "scan"
    if acpc_mm is None:
        check_target(atlas_obj, target, sides)
    if acpc_mm is not None:
        acpc_mm = _as_point(acpc_mm, "acpc_mm")
    if registration is None:
        registration = register(scan, atlas_obj, settings=settings,
                                progress=None if progress is None else (lambda f, m: progress(0.95 * f, m)))
    else:
        if not isinstance(registration, Registration):
            registration = load_registration(registration)
        if registration.atlas != atlas_obj.name:
            raise FusplanInputError(f"registration is for atlas {registration.atlas!r}, not {atlas_obj.name!r}")
        if registration.scan_fingerprint and not registration.matches(scan):
            raise FusplanInputError(f"{name}: the given registration was computed for another scan")
    if progress is not None:
        progress(0.96, "placing targets")

    mapped = {key: registration.template_to_subject(value) for key, value in atlas_obj.landmarks.items()}
    midline = _template_midline(mapped)
    right_hint = registration.affine_mm[:3, :3] @ template_frame(atlas_obj).axes[:, 0]
    source = "atlas"
    ac = mapped["AC"]
    pc = mapped["PC"]
    if ac_mm is not None:
        ac, source = _as_point(ac_mm, "ac_mm"), "user"
    if pc_mm is not None:
        pc, source = _as_point(pc_mm, "pc_mm"), "user"
    frame = AcpcFrame.from_landmarks(ac, pc, midline, right_hint)
    low, high = ACPC_LENGTH_RANGE_MM
    if not low <= frame.acpc_length_mm <= high:
        what = "given AC/PC" if source == "user" else f"{name}: registration failed (mapped AC-PC"
        raise FusplanInputError(
            f"{what} distance {frame.acpc_length_mm:.1f} mm is outside {low:g}-{high:g} mm"
            + (")" if source == "atlas" else "")
        )

    targets = []
    for side in sides:
        if acpc_mm is not None:
            signed = acpc_mm.copy()
            signed[0] = abs(signed[0]) * (1.0 if side == "right" else -1.0)
            ras = frame.to_ras(signed)
            label = target if target not in (None, CLP_TARGET) else "acpc"
        else:
            if target == CLP_TARGET:
                point = clp_template_point(atlas_obj, side)
            else:
                point = label_template_point(atlas_obj, target, side)
            ras = registration.template_to_subject(point)
            label = target
        if not _inside_fov(scan, ras):
            raise FusplanInputError(
                f"{name}: the {side} target {np.round(ras, 1).tolist()} mm is outside the scan's field of view")
        if not _in_template_brain(registration, atlas_obj, ras):
            raise FusplanInputError(f"{name}: the {side} target {np.round(ras, 1).tolist()} mm is outside the brain")
        targets.append(Target(label, side, ras, frame.to_acpc(ras)))
    for key, point in (("AC", frame.ac_mm), ("PC", frame.pc_mm)):
        if not _inside_fov(scan, point):
            raise FusplanInputError(
                f"{name}: {key} {np.round(point, 1).tolist()} mm is outside the scan's field of view")
    landmarks = {"AC": frame.ac_mm, "PC": frame.pc_mm, "MCP": frame.mcp_mm}
    if progress is not None:
        progress(1.0, "targets placed")
    rule = {"target": target, "acpc_mm": None if acpc_mm is None else [float(v) for v in acpc_mm]}
    return TargetingResult(targets, frame, landmarks, registration, atlas_obj.name, source, rule)
