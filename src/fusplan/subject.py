"""Prepare a subject for planning: the steps every front end shares, written once.

The command line (``target``, ``simulate``, ``plan``), the batch runner, the demo and
the napari plugin all call :func:`prepare_subject`, which runs, cheapest first:

1. check the targeting request against the atlas (:meth:`TargetRequest.check`: a
   typo fails before a registration of a minute);
2. load the head CT (it must load as a head CT in HU);
3. load the scan;
4. locate the targets (:func:`locate`), reusing a saved atlas registration when one
   is given or cached;
5. register the CT to the scan (:func:`register_ct`), reusing a saved CT
   registration when one is given or cached, and apply it.

Reuse follows three rules. A registration the user *gives* must load and belong to
these inputs (else :class:`~fusplan.errors.FusplanInputError`; a CT registration is
checked against the CT before the scan is read). A *saved* CT registration found where
fusplan writes one (``--out``, beside a given registration file) must be intact when it
exists, and is used when it belongs to this CT and scan. A *cached* registration (batch
and demo caches) is used only when it loads, belongs to these inputs and (atlas
registrations) was computed with the requested preset; otherwise it is ignored, and a
new registration is computed and written back to the cache.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

from .errors import FusplanInputError
from .execution import ExecutionOptions
from .io import Scan, load_scan
from .progress import ProgressCallback, within
from .registration import Registration, load_registration, scan_fingerprint
from .registration.settings import SETTINGS
from .skull import SkullCT, load_ct
from .skull.registration import CtRegistration, ct_fingerprint, load_ct_registration, register_ct_to_mr
from .targeting import TargetingResult, check_target, locate_targets
from .vocabulary import CT_REGISTRATION_FILE, DEFAULT_ATLAS, DEFAULT_SIDE, DEFAULT_TARGET, parse_sides

#: Share of :func:`prepare_subject`'s progress for targeting when a CT is registered too.
TARGETING_SHARE = 0.7


@dataclass(frozen=True)
class TargetRequest:
    """Where to place the targets and which atlas registration to reuse.

    Attributes
    ----------
    atlas : str
        An atlas of :data:`fusplan.vocabulary.ATLASES`.
    sides : str or sequence of str
        Read by :func:`fusplan.vocabulary.parse_sides` (stored as a tuple in side order).
    target : str
        ``CLp`` or an atlas label (abbreviation or name).
    acpc_mm, ac_mm, pc_mm : (x, y, z) or None
        A target in AC-PC mm instead of the atlas rule; user AC and PC in world RAS mm.
    registration : path, Registration or None
        A registration of this scan the user gives: it must load and match the scan.
    registration_cache : path or None
        A cached registration, used when it loads and matches the scan, the atlas and
        the registration preset; a new registration is written there.
    """

    atlas: str = DEFAULT_ATLAS
    sides: tuple[str, ...] = (DEFAULT_SIDE,)
    target: str = DEFAULT_TARGET
    acpc_mm: Sequence[float] | None = None
    ac_mm: Sequence[float] | None = None
    pc_mm: Sequence[float] | None = None
    registration: str | os.PathLike | Registration | None = None
    registration_cache: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sides", parse_sides(self.sides))

    def check(self) -> None:
        """Cheap checks before any registration: AC with PC, the target on the atlas.

        Raises
        ------
        FusplanInputError
            AC without PC (or the reverse), an unknown atlas, or a target the atlas
            cannot place on the requested sides.
        """
        if (self.ac_mm is None) != (self.pc_mm is None):
            raise FusplanInputError("AC and PC must be given together (--ac with --pc)")
        if self.acpc_mm is None:
            check_target(self.atlas, self.target, self.sides)


@dataclass(frozen=True, eq=False)
class Subject:
    """A scan ready to plan on: its targets and, with a CT, the CT registered to it.

    Attributes
    ----------
    scan : Scan
    targets : TargetingResult
    skull_ct : SkullCT or None
        The patient's CT, samplable at the scan's world RAS mm.
    ct_registration : CtRegistration or None
        The CT -> MR registration behind ``skull_ct``.
    """

    scan: Scan
    targets: TargetingResult
    skull_ct: SkullCT | None = None
    ct_registration: CtRegistration | None = None


@dataclass(frozen=True)
class CtRequest:
    """The patient's head CT and which CT -> MR registration to reuse.

    Attributes
    ----------
    ct : path or SkullCT
    registration : path or None
        A CT registration the user gives: it must load and belong to this CT and scan.
    reuse : sequence of path
        Saved CT registrations: each that exists must be intact, and is used when it
        belongs to this CT and scan.
    cache_dir : path or None
        A folder of CT registrations named by CT and scan; a new registration is
        written there (and one found there is reused).
    """

    ct: str | os.PathLike | SkullCT
    registration: str | os.PathLike | None = None
    reuse: Sequence[str | os.PathLike] = field(default_factory=tuple)
    cache_dir: str | os.PathLike | None = None

    def check(self, ct: SkullCT) -> None:
        """Cheap checks before the scan is read: the given CT registration loads and belongs to
        ``ct``; every saved one that exists loads.

        Raises
        ------
        FusplanInputError
            One line naming the registration file.
        """
        if self.registration is not None:
            load_ct_registration(self.registration, ct=ct)
        for path in self.reuse:
            if Path(path).exists():
                load_ct_registration(path)


def prepare_subject(scan: str | os.PathLike | Scan, request: TargetRequest, ct: CtRequest | None = None,
                    options: ExecutionOptions | None = None) -> Subject:
    """Check the request, load the CT and the scan, locate the targets, register the CT.

    Parameters
    ----------
    scan : path or Scan
    request : TargetRequest
    ct : CtRequest, optional
    options : ExecutionOptions, optional
        Its ``registration_preset`` and ``progress`` (raising inside it cancels) are used.

    Returns
    -------
    Subject

    Raises
    ------
    FusplanInputError
        Bad input, cheapest first (see the module docstring).
    """
    options = options or ExecutionOptions()
    request.check()
    skull_ct = None
    if ct is not None:
        skull_ct = ct.ct if isinstance(ct.ct, SkullCT) else load_ct(ct.ct)
        ct.check(skull_ct)
    scan = scan if isinstance(scan, Scan) else load_scan(scan)
    share = 1.0 if ct is None else TARGETING_SHARE
    found = locate(scan, request, options.with_progress(within(options.progress, 0.0, share)))
    if ct is None:
        return Subject(scan, found)
    registration = register_ct(skull_ct, scan, ct, within(options.progress, share, 1.0))
    return Subject(scan, found, registration.apply(skull_ct), registration)


def locate(scan: Scan, request: TargetRequest, options: ExecutionOptions | None = None) -> TargetingResult:
    """Place the targets of ``request`` on ``scan``, reusing a given or cached atlas registration.

    A new registration (``options.registration_preset``) is written to
    ``request.registration_cache`` (atomically).
    """
    options = options or ExecutionOptions()
    progress = options.progress
    registration = request.registration
    if registration is not None and not isinstance(registration, Registration):
        registration = load_registration(registration, scan=scan)
    cache = None if request.registration_cache is None else Path(request.registration_cache)
    if registration is None and cache is not None:
        registration = _cached_registration(cache, scan, request.atlas, options.registration_preset)
        if progress is not None and registration is not None:
            progress(0.0, f"reusing the cached registration in {cache}")
    if progress is not None and registration is None:
        progress(0.0, f"registering the atlas to {scan.path.name if scan.path else 'the scan'}")
    found = locate_targets(scan, atlas=request.atlas, sides=request.sides, target=request.target,
                           acpc_mm=request.acpc_mm, ac_mm=request.ac_mm, pc_mm=request.pc_mm,
                           registration=registration, progress=progress, settings=options.registration_preset)
    if registration is None and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        found.registration.save(cache)
    return found


def _cached_registration(path: Path, scan: Scan, atlas: str, preset: str) -> Registration | None:
    """The registration cached at ``path`` if it loads and fits the scan, atlas and preset, else None."""
    if not path.is_file():
        return None
    try:
        registration = load_registration(path, scan=scan)
    except FusplanInputError:  # damaged, foreign or older: register afresh
        return None
    if registration.atlas != atlas or registration.settings != preset_settings(preset):
        return None
    return registration


def preset_settings(preset: str) -> dict:
    """The settings a registration records for ``preset`` (:attr:`Registration.settings`)."""
    return json.loads(json.dumps(SETTINGS[preset].__dict__))


def register_ct(ct: SkullCT, scan: Scan, request: CtRequest,
                progress: ProgressCallback | None = None) -> CtRegistration:
    """The CT -> MR registration of ``ct`` to ``scan``: given, reused or computed (then cached).

    Raises
    ------
    FusplanInputError
        A given registration that does not load or belongs to another CT or scan, or a
        damaged saved one (see :class:`CtRequest`).
    """
    if request.registration is not None:
        return load_ct_registration(request.registration, ct=ct, scan=scan)
    for path in request.reuse:
        if Path(path).exists():
            saved = load_ct_registration(path)
            if saved.matches(ct, scan):
                return saved
    cache = None if request.cache_dir is None else ct_cache_path(request.cache_dir, ct, scan)
    if cache is not None and cache.is_file():
        try:
            return load_ct_registration(cache, ct=ct, scan=scan)
        except FusplanInputError:  # damaged or foreign cache: register afresh, as for the atlas
            pass
    registration = register_ct_to_mr(ct, scan, progress=progress)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        registration.save(cache)
    return registration


def ct_cache_path(folder: str | os.PathLike, ct: SkullCT, scan: Scan) -> Path:
    """Where a folder caches the registration of ``ct`` to ``scan`` (named by both fingerprints)."""
    return Path(folder) / f"ct-{ct_fingerprint(ct)[:16]}-{scan_fingerprint(scan)[:16]}.npz"


def ct_registration_beside(registration: str | os.PathLike | None) -> tuple[Path, ...]:
    """The CT registration saved next to an atlas registration file (as ``--out`` writes them), if any."""
    if registration is None or isinstance(registration, Registration):
        return ()
    return (Path(registration).parent / CT_REGISTRATION_FILE,)


__all__ = ["CtRequest", "Subject", "TargetRequest", "ct_cache_path", "ct_registration_beside",
           "locate", "prepare_subject", "register_ct"]
