"""The progress callback shared by every long step: ``progress(fraction, message)``.

``fraction`` runs from 0 to 1 over the step; ``message`` names what is being done. A
caller cancels a step by raising from its callback: long loops call it between
chunks of work, so the exception stops them within one chunk.
"""
from __future__ import annotations

from typing import Callable

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
