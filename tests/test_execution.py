"""ExecutionOptions and the one thread rule (workers x threads <= cores)."""
import numpy as np
import pytest

from fusplan.batch.engines import threads_per_worker
from fusplan.execution import REGISTRATION_PRESETS, ExecutionOptions, HeatSourceCache
from fusplan.registration.settings import SETTINGS
from fusplan.threads import MAX_DEFAULT_THREADS, resolve_threads


def test_presets_are_the_registration_settings():
    assert set(REGISTRATION_PRESETS) == set(SETTINGS)


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("workers", [1, 2, 3, 16])
def test_default_threads_never_oversubscribe(monkeypatch, cores, workers):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    threads = resolve_threads(None, workers)
    assert 1 <= threads <= MAX_DEFAULT_THREADS
    assert workers * threads <= max(cores, workers)
    assert threads_per_worker(workers) == threads  # batch follows the same rule
    assert ExecutionOptions(workers=workers).resolved().threads == threads


def test_explicit_threads_are_kept_and_checked():
    assert ExecutionOptions(threads=3, workers=2).resolved().threads == 3
    with pytest.raises(ValueError, match="threads"):
        ExecutionOptions(threads=1.5).resolved()
    with pytest.raises(ValueError, match="workers"):
        ExecutionOptions(workers=0)
    with pytest.raises(ValueError, match="registration preset"):
        ExecutionOptions(registration_preset="quick")


def test_progress_defaults_to_silent():
    calls = []
    ExecutionOptions().say(0.5, "half")
    ExecutionOptions(progress=lambda f, m: calls.append((f, m))).say(0.5, "half")
    assert calls == [(0.5, "half")]


def test_heat_source_cache_drops_least_recently_used():
    cache = HeatSourceCache(max_entries=2)
    a, b, c = (np.full(2, v) for v in (1.0, 2.0, 3.0))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # "a" is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None and cache.get("a") is a and cache.get("c") is c and len(cache) == 2
    cache.clear()
    assert len(cache) == 0
