"""How a run executes: threads, worker processes, engine, progress, registration preset.

One :class:`ExecutionOptions` is built by each entry point (CLI command, batch, demo,
plugin job), resolved once with :meth:`ExecutionOptions.resolved` (threads capped so
that ``workers x threads`` does not exceed the cores, :func:`fusplan.threads.resolve_threads`)
and passed down whole; nothing below reads the environment or a module global. A
:class:`HeatSourceCache` owned by the caller (e.g. a batch task) lets successive runs
share heat sources; without one every simulation computes its own.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any
from collections.abc import Callable, Hashable

import numpy as np

from .threads import resolve_threads
from .vocabulary import DEFAULT_REGISTRATION_PRESET, REGISTRATION_PRESETS

__all__ = ["REGISTRATION_PRESETS", "DEFAULT_REGISTRATION_PRESET", "ExecutionOptions", "HeatSourceCache", "LruCache",
           "execution_options"]


class LruCache:
    """Least-recently-used arrays by key (the caller builds the key from every input)."""

    def __init__(self, max_entries: int = 16):
        self.max_entries = int(max_entries)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable) -> np.ndarray | None:
        """The cached array for ``key``, or None."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: np.ndarray) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used beyond ``max_entries``."""
        self._items[key] = value
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached source."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class HeatSourceCache(LruCache):
    """Least-recently-used heat sources by key, shared by successive simulations of a caller."""


@dataclass(frozen=True)
class ExecutionOptions:
    """Execution settings of one run, passed whole from the entry point down.

    Attributes
    ----------
    threads : int, optional
        Threads each process uses for its numerical work (field sums, FFTs). None:
        decided by :meth:`resolved` (cores / workers, at most
        :data:`fusplan.threads.MAX_DEFAULT_THREADS`).
    workers : int
        Worker processes (1: in this process).
    engine : optional
        An engine with ``submit(fn, *args)`` (:func:`fusplan.batch.engines.make_engine`:
        process pool or Dask) for independent runs (e.g. the uncertainty band's); the
        caller closes it. None: ``workers`` processes of a local pool, or this process.
    progress : callable(fraction, message), optional
        Told the fraction done.
    registration_preset : {"standard", "fast", "affine"}
        Atlas registration preset (:data:`fusplan.registration.settings.SETTINGS`).
    heat_sources : HeatSourceCache, optional
        Heat sources shared by successive simulations of the caller (None: none shared).
    """

    threads: int | None = None
    workers: int = 1
    engine: Any = None
    progress: Callable[[float, str], None] | None = None
    registration_preset: str = DEFAULT_REGISTRATION_PRESET
    heat_sources: HeatSourceCache | None = field(default=None, compare=False)

    def __post_init__(self):
        if isinstance(self.workers, bool) or int(self.workers) != self.workers or self.workers < 1:
            raise ValueError(f"workers must be an integer >= 1 (got {self.workers!r})")
        if self.registration_preset not in REGISTRATION_PRESETS:
            raise ValueError(f"registration preset must be one of {', '.join(REGISTRATION_PRESETS)} "
                             f"(got {self.registration_preset!r})")

    def resolved(self) -> ExecutionOptions:
        """These options with ``threads`` decided (see :func:`fusplan.threads.resolve_threads`)."""
        return replace(self, threads=resolve_threads(self.threads, self.workers))

    @property
    def say(self) -> Callable[[float, str], None]:
        """The progress callback, or one that ignores what it is told."""
        return self.progress or _silent

    def with_progress(self, progress: Callable[[float, str], None] | None) -> ExecutionOptions:
        """These options reporting to ``progress`` instead."""
        return replace(self, progress=progress)


def execution_options(execution: ExecutionOptions | None = None, *, threads: int | None = None,
                      progress: Callable[[float, str], None] | None = None) -> ExecutionOptions:
    """``execution`` (default: the defaults) resolved, the explicit ``threads`` / ``progress`` keywords of an
    entry point taking precedence over its fields."""
    options = ExecutionOptions() if execution is None else execution
    if threads is not None:
        options = replace(options, threads=threads)
    if progress is not None:
        options = replace(options, progress=progress)
    return options.resolved()


def _silent(fraction: float, message: str = "") -> None:
    """A progress callback that ignores what it is told."""
