"""The Qt-free session model: inputs, the targets and the result computed from them.

A :class:`PlanSession` holds what the user chose (scan, targeting form, protocol),
the :class:`~fusplan.targeting.TargetingResult` located from a scan and form, and
the :class:`~fusplan.planner.SimulationResult` simulated from targets and protocol.
Each result remembers the inputs it was computed from (a :class:`Provenance`); any
change of those inputs drops it, and a result that comes back from a worker after
its inputs changed is refused. A result therefore never outlives its inputs.

Listeners (plain callables, no Qt) hear ``"targets"`` or ``"result"`` whenever one
appears or is dropped, and ``"moved"`` when a target point was dragged; the widgets
redraw from the session. A dragged target turns the result into a :class:`Preview`
(the old maps moved with the target, display only) until the re-plan arrives.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from fusplan import DEFAULT_ATLAS, DEFAULT_REGISTRATION_PRESET, DEFAULT_SIDE, DEFAULT_TARGET

from ._layers import move_target, target_label


@dataclass(frozen=True)
class TargetingForm:
    """What the Plan tab asks for: a scan layer and how to locate the target(s)."""

    scan: str | None = None
    atlas: str = DEFAULT_ATLAS
    sides: tuple[str, ...] = (DEFAULT_SIDE,)
    target: str = DEFAULT_TARGET
    settings: str = DEFAULT_REGISTRATION_PRESET
    registration: str | None = None
    acpc_mm: tuple | None = None
    ac_mm: tuple | None = None
    pc_mm: tuple | None = None
    ct: str | None = None  # head CT (NIfTI or DICOM folder), registered when locating; None: population skull

    def locate_options(self) -> dict:
        """Keyword arguments of :func:`fusplan.locate_targets`."""
        options = {"atlas": self.atlas, "sides": self.sides, "target": self.target, "settings": self.settings}
        for key in ("registration", "acpc_mm", "ac_mm", "pc_mm"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        return options


@dataclass(frozen=True)
class Provenance:
    """The inputs a simulation was computed from (compared whole, so any change shows)."""

    scan: str | None
    targets: tuple = ()
    protocol: str = ""
    protocol_name: str = ""
    labels: tuple[str, ...] = field(default=())
    thermometry: str | None = None
    uncertainty_samples: int = 0

    def describe(self) -> str:
        """``"Gaussian demo at CLp left on ch2"`` / ``"... in the phantom (no scan)"``."""
        where = f"at {', '.join(self.labels)} on {self.scan}" if self.scan else "in the tissue phantom (no scan)"
        return f"{self.protocol_name} {where}"


@dataclass(frozen=True)
class Preview:
    """The last result moved with its dragged targets: drawn while re-planning, never a result.

    Near the focus the plan is linear and translation invariant (calibration and the
    uncertainty band use this: :func:`fusplan.focusmodel.transform_source`), so a target
    moved by a few mm carries its heat, dose and lesion with it. A preview is display
    only: it is never exported, never shown in the Results tab, and it goes when the
    re-plan arrives or any other input changes.
    """

    provenance: Provenance
    origins_mm: dict  # side -> the target's RAS mm in the previewed result

    def shifts_mm(self, found) -> dict:
        """side -> how far (RAS mm) ``found``'s target of that side is from where the result put it."""
        return {t.side: np.asarray(t.ras_mm, dtype=float) - self.origins_mm[t.side]
                for t in found.targets if t.side in self.origins_mm}


def _registration_key(form: TargetingForm) -> tuple:
    """The inputs an atlas registration depends on (the target and sides do not count)."""
    return form.scan, form.atlas, form.settings, form.registration


def protocol_key(protocol) -> str:
    """A canonical text of a protocol's mapping (edits of any cell change it)."""
    return json.dumps(protocol.spec, sort_keys=True, default=str)


class PlanSession:
    """Inputs, targets and result of one planning session, kept consistent."""

    def __init__(self):
        self.form = TargetingForm()
        self.protocol = None
        self.scan = None
        self.found = None
        self.skull_ct = None  # the form's CT registered to the scan (None: population skull)
        self._found_form: TargetingForm | None = None
        self._registration = None  # the atlas registration of the last located scan, kept across target edits
        self._registration_key: tuple | None = None
        self.result = None
        self.provenance: Provenance | None = None
        self.preview: Preview | None = None
        self.thermometry: str | None = None
        self.uncertainty_samples = 0
        self._listeners: list[Callable[[str], None]] = []

    # ------------------------------------------------------------ listeners
    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener("targets")`` / ``listener("result")`` when either changes."""
        self._listeners.append(listener)

    def _emit(self, what: str) -> None:
        for listener in list(self._listeners):
            listener(what)

    # ------------------------------------------------------------ inputs
    def set_form(self, form: TargetingForm) -> None:
        """New targeting inputs: targets placed from other inputs (and their result) are dropped.

        The atlas registration is kept while the scan, atlas, registration preset and
        file stay the same (:meth:`reusable_registration`): another target or side
        does not register again.
        """
        self.form = form
        if self.found is not None and self._found_form != form:
            self.clear_targets()
        if self._registration_key is not None and self._registration_key != _registration_key(form):
            self._registration = self._registration_key = None

    def set_protocol(self, protocol) -> None:
        """New (or edited, or invalid: None) protocol: a result of another protocol is dropped."""
        self.protocol = protocol
        shown = self._shown()
        if shown is not None and (protocol is None or shown.protocol != protocol_key(protocol)):
            self.clear_result()

    def set_assessment(self, thermometry: str | None, uncertainty_samples: int) -> None:
        """Measured thermometry to calibrate on and band samples: a result made otherwise is dropped."""
        self.thermometry, self.uncertainty_samples = thermometry or None, int(uncertainty_samples)
        shown = self._shown()
        if shown is not None and (shown.thermometry, shown.uncertainty_samples) != (
                self.thermometry, self.uncertainty_samples):
            self.clear_result()

    def _shown(self) -> Provenance | None:
        """The inputs of what is on screen: the result's, or the previewed result's."""
        return self.provenance if self.result is not None else None if self.preview is None else self.preview.provenance

    def measurements(self):
        """The thermometry file read and checked against the protocol (None without one).

        Raises :class:`~fusplan.errors.FusplanInputError` naming the file and key.
        """
        from fusplan import load_measurements

        if self.thermometry is None:
            return None
        return load_measurements(self.thermometry, n_sonications=len(self.protocol.sonications))

    def scans_changed(self, names) -> None:
        """The viewer's scan layers are now ``names``.

        Targets on a scan that left are dropped, and so is a phantom result once a scan
        is open (phantom heat is never drawn over a patient).
        """
        if self.form.scan is not None and self.form.scan not in names:
            self._registration = self._registration_key = None
            if self.found is not None:
                self.clear_targets()
        if names and self.result is not None and self.provenance.scan is None:
            self.clear_result()

    # ------------------------------------------------------------ targets
    def set_targets(self, scan, found, form: TargetingForm, skull_ct=None) -> bool:
        """Accept located targets (and the form's registered CT); refused (False) if the form changed while locating."""
        if form != self.form:
            return False
        self.scan, self.found, self._found_form, self.skull_ct = scan, found, form, skull_ct
        self._registration, self._registration_key = found.registration, _registration_key(form)
        self.clear_result()
        self._emit("targets")
        return True

    def move_target(self, index: int, ras_mm) -> bool:
        """A target was dragged to ``ras_mm``: targets follow, the result becomes a :class:`Preview`
        (True if it moved)."""
        if self.found is None or np.allclose(ras_mm, self.found.targets[index].ras_mm, atol=1e-6):
            return False
        if self.result is not None:
            self.preview = Preview(self.provenance, {t.side: np.asarray(t.ras_mm, dtype=float)
                                                     for t in self.found.targets})
        self.found = move_target(self.found, index, ras_mm)
        self.clear_result(keep_preview=True)
        self._emit("moved")
        return True

    def clear_targets(self) -> None:
        self.scan = self.found = self._found_form = self.skull_ct = None
        self.clear_result()
        self._emit("targets")

    def reusable_registration(self, form: TargetingForm):
        """The registration made for the last targets if ``form`` differs only in where the targets go.

        Same scan, atlas, preset and no registration file: the atlas maps onto the scan
        the same way, so locating another target or side needs no new registration.
        """
        if form.registration is not None or self._registration_key != _registration_key(form):
            return None
        return self._registration

    # ------------------------------------------------------------ simulation
    def simulate_blocker(self, has_scan: bool) -> str | None:
        """Why Simulate cannot run now (None if it can)."""
        if self.protocol is None:
            return "the protocol has an error (see the Protocol tab)"
        if has_scan and self.found is None:
            return "locate a target first: with a scan open, Simulate runs at the target (never the phantom)"
        return None

    def next_step(self, has_scan: bool) -> str:
        """What the user sees now and can do next (the status line when nothing runs)."""
        if self.result is not None:
            return f"showing the result of {self.provenance.describe()}: slider = time, or the Teaching tab"
        if self.preview is not None:
            return "PREVIEW: the last result moved with the target (not a plan); Simulate re-plans here"
        if self.found is not None:
            return "target located: drag the target point to move it; Simulate runs the protocol there"
        if has_scan:
            return "Choose the atlas, side and target, then Locate target."
        return "No scan: Simulate runs the tissue phantom, or open a scan (File > Open Sample > fusplan)."

    def provenance_now(self) -> Provenance:
        """The inputs a simulation started now would be computed from."""
        targets = () if self.found is None else tuple(
            (t.side, t.name, tuple(np.round(np.asarray(t.ras_mm, dtype=float), 6))) for t in self.found.targets)
        labels = () if self.found is None else tuple(target_label(t) for t in self.found.targets)
        return Provenance(scan=self.form.scan if self.found is not None else None, targets=targets,
                          protocol=protocol_key(self.protocol), protocol_name=self.protocol.name, labels=labels,
                          thermometry=self.thermometry, uncertainty_samples=self.uncertainty_samples)

    def set_result(self, result, provenance: Provenance) -> bool:
        """Accept a simulation; refused (False) if its inputs changed while it ran."""
        if self.protocol is None or provenance != self.provenance_now():
            return False
        self.result, self.provenance, self.preview = result, provenance, None
        self._emit("result")
        return True

    def clear_result(self, keep_preview: bool = False) -> None:
        """No result (and, unless ``keep_preview``, no preview either)."""
        had = self.result is not None or (self.preview is not None and not keep_preview)
        self.result = self.provenance = None
        if not keep_preview:
            self.preview = None
        if had:
            self._emit("result")
