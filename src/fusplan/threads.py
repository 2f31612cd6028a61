"""Worker thread counts: one rule, decided at the entry point and passed down.

Every function that can use several threads takes ``threads: int | None = None``;
the public entry point resolves ``None`` once with :func:`resolve_threads` and passes
the integer down. Nothing below reads the environment or a module global.
"""
from __future__ import annotations

import os

__all__ = ["MAX_DEFAULT_THREADS", "resolve_threads"]

#: Cap of the default: the field and bioheat kernels are memory-bound beyond ~4 threads.
MAX_DEFAULT_THREADS = 4


def resolve_threads(threads: int | None) -> int:
    """``threads`` if given (at least 1), else ``os.cpu_count()`` capped at :data:`MAX_DEFAULT_THREADS`."""
    if threads is None:
        return max(1, min(MAX_DEFAULT_THREADS, os.cpu_count() or 1))
    if isinstance(threads, bool) or int(threads) != threads:
        raise ValueError(f"threads must be an integer (got {threads!r})")
    return max(1, int(threads))
