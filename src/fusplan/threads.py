"""Worker thread counts: one rule, decided at the entry point and passed down.

Every function that can use several threads takes an integer ``threads``; the public
entry point resolves it once (:meth:`fusplan.execution.ExecutionOptions.resolved`, which
calls :func:`resolve_threads`) and passes the integer down. The rule: ``workers``
processes x ``threads`` each never exceed the cores, and the default is capped at
:data:`MAX_DEFAULT_THREADS`. Nothing below reads the environment or a module global.
"""
from __future__ import annotations

import os

__all__ = ["MAX_DEFAULT_THREADS", "resolve_threads"]

#: Cap of the default: the field and bioheat kernels are memory-bound beyond ~4 threads.
MAX_DEFAULT_THREADS = 4


def resolve_threads(threads: int | None, workers: int = 1) -> int:
    """Threads for each of ``workers`` processes.

    ``threads`` if given (at least 1), else ``os.cpu_count() // workers`` capped at
    :data:`MAX_DEFAULT_THREADS` (at least 1), so ``workers x threads <= cores``.
    """
    if threads is None:
        return max(1, min(MAX_DEFAULT_THREADS, (os.cpu_count() or 1) // max(1, int(workers))))
    if isinstance(threads, bool) or int(threads) != threads:
        raise ValueError(f"threads must be an integer (got {threads!r})")
    return max(1, int(threads))
