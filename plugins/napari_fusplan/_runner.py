"""Run a long library call in a napari thread worker, with progress, cancel and clean shutdown.

The job receives ``progress(fraction, message)`` (the library's callback
signature); when the user cancels, or the dock closes, the next call of it raises
:class:`Cancelled` inside the worker, which ends the job there.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from qtpy.QtCore import QObject, Signal


class Cancelled(Exception):
    """Raised inside a worker's progress callback when the job was cancelled."""


class _Signals(QObject):
    progressed = Signal(float, str)


class JobRunner(QObject):
    """One job at a time; ``on_progress(fraction, message)``, ``on_error(text)``, ``on_finished()``."""

    def __init__(self, on_progress: Callable, on_error: Callable, on_finished: Callable):
        super().__init__()
        self._signals = _Signals()
        self._signals.progressed.connect(on_progress)
        self._on_error, self._on_finished = on_error, on_finished
        self._cancel = threading.Event()
        self.worker = None
        self.title = ""
        self.started_s = 0.0
        self.closed = False

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, title: str, job: Callable, on_done: Callable) -> None:
        """Run ``job(progress)`` in a thread; ``on_done(value)`` runs in the GUI thread.

        A job still running is cancelled first: nothing of it is called back from then on.
        """
        from napari.qt.threading import create_worker

        if self.worker is not None:
            self.cancel()
        self._cancel = cancel = threading.Event()  # each job its own: a late report of an old one stays cancelled
        self.title, self.started_s = title, time.monotonic()
        signals = self._signals

        def progress(fraction: float, message: str = "") -> None:
            if cancel.is_set():
                raise Cancelled(title)
            signals.progressed.emit(float(fraction), str(message))

        def current() -> bool:
            return self.worker is worker and not self.closed

        def guarded(value):
            if not cancel.is_set() and current():
                on_done(value)

        def errored(error):
            if current():
                self._errored(error)

        def finished():
            if self.worker is worker:
                self._finished()

        worker = self.worker = create_worker(job, progress, _start_thread=False,
                                             _connect={"returned": guarded, "errored": errored, "finished": finished})
        worker.start()

    def cancel(self) -> None:
        """Stop at the job's next progress report (its result, if any, is dropped)."""
        self._cancel.set()
        if self.worker is not None:
            self.worker.quit()

    def shutdown(self) -> None:
        """The dock is closing: cancel, and call back nothing from now on.

        The thread ends at the job's next progress report; nothing it returns is used.
        """
        self.closed = True
        self.cancel()

    def _errored(self, error: Exception) -> None:
        from fusplan import FusplanInputError

        if self.closed:
            return
        if isinstance(error, Cancelled) or self._cancel.is_set():
            self._on_error("cancelled")
        elif isinstance(error, FusplanInputError):
            self._on_error(str(error))
        else:
            self._on_error(f"internal error: {type(error).__name__}: {error}")

    def _finished(self) -> None:
        self.worker = None
        if not self.closed:
            self._on_finished()
