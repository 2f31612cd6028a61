"""The progress callback shared by every long step: ``progress(fraction, message)``.

``fraction`` runs from 0 to 1 over the step; ``message`` names what is being done. A
caller cancels a step by raising from its callback: long loops call it between
chunks of work, so the exception stops them within one chunk.

Front ends show progress on stderr: a redrawn bar on a terminal, and on anything else
(a log file, a pipe, CI) a few plain lines from :class:`LineProgress`
(:func:`is_terminal` decides).
"""
from __future__ import annotations

from typing import TextIO
from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]


def within(progress: ProgressCallback | None, low: float, high: float) -> ProgressCallback | None:
    """``progress`` rescaled so that a sub-step's 0..1 maps to ``low``..``high`` of the whole.

    Returns None when ``progress`` is None, so sub-steps can skip reporting cheaply.
    """
    if progress is None:
        return None

    def scaled(fraction: float, message: str) -> None:
        progress(low + (high - low) * min(max(float(fraction), 0.0), 1.0), message)

    return scaled


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (else a file, a pipe or a CI log)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class LineProgress:
    """Progress as a few plain lines, for a log file or a pipe (no carriage-return redraws).

    Called as a :data:`ProgressCallback`; writes ``"<description>: 40% <message>"`` when
    the fraction first reaches each multiple of ``step`` (so at most ``1 / step + 1``
    lines), and :meth:`update` counts items towards ``total`` the same way.
    """

    def __init__(self, description: str, stream: TextIO, *, step: float = 0.2, total: int | None = None,
                 unit: str = ""):
        self.description, self.stream, self.step = description, stream, float(step)
        self.total, self.unit, self.count = total, unit, 0
        self.next_fraction = 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if fraction + 1e-9 < self.next_fraction:
            return
        self.stream.write(f"{self.description}: {100 * fraction:3.0f}%" + (f" {message}" if message else "") + "\n")
        self.stream.flush()
        self.next_fraction = (int(fraction / self.step + 1e-9) + 1) * self.step if fraction < 1.0 else 2.0

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items (of ``total``)."""
        self.count += n
        if self.total:
            self(self.count / self.total, f"{self.count}/{self.total} {self.unit}".rstrip())

    def close(self) -> None:
        """Nothing to tidy: every line is complete when written."""
