"""Where batch tasks run: in this process, a local process pool, or Dask distributed.

Every engine has ``submit(fn, *args)``, ``as_completed(futures)`` and
``close(cancel=False)``; none changes module state in the workers (the thread
count travels with each task as an argument).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ..errors import FusplanInputError
from ..threads import resolve_threads
from .tasks import one_line


def default_workers() -> int:
    """Default number of local worker processes: ``min(2, cpu count)``."""
    return max(1, min(2, os.cpu_count() or 1))


def threads_per_worker(workers: int) -> int:
    """Threads each of ``workers`` processes may use so they do not oversubscribe the cores.

    The one rule of :func:`fusplan.threads.resolve_threads`: ``workers x threads <= cores``,
    at most :data:`~fusplan.threads.MAX_DEFAULT_THREADS`.
    """
    return resolve_threads(None, workers)


def make_engine(workers: int, use_dask: bool = False, scheduler: str | None = None):
    """The engine for ``workers`` processes (``1``: in this process), or Dask."""
    if scheduler is not None:
        check_scheduler_address(scheduler)
    if use_dask or scheduler:
        return DaskEngine(scheduler, workers)
    return InlineEngine() if workers == 1 else PoolEngine(workers)


#: Dask communication schemes a scheduler address may name (distributed.comm).
SCHEDULER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def check_scheduler_address(address: str) -> str:
    """Refuse a Dask scheduler address that cannot be one, before any connection or output.

    Accepted: ``[scheme://]host:port`` with a scheme of :data:`SCHEDULER_SCHEMES`
    (default ``tcp``), a host name or address and a port 1-65535; ``inproc://...``.

    Raises
    ------
    FusplanInputError
        ``--scheduler``: an empty address, an unknown scheme, no host or a bad port.
    """
    text = address.strip() if isinstance(address, str) else ""
    shown = address if len(str(address)) <= 80 else str(address)[:80] + "..."
    if not text:
        raise FusplanInputError("--scheduler: empty address (give e.g. tcp://10.0.0.5:8786, or --dask for a local "
                                "cluster)")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    if scheme not in SCHEDULER_SCHEMES:
        raise FusplanInputError(f"--scheduler {shown!r}: unknown scheme {scheme!r} (known: "
                                f"{', '.join(SCHEDULER_SCHEMES)})")
    if scheme == "inproc":
        return text
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or any(c.isspace() or c in "/?#@" for c in host):
        raise FusplanInputError(f"--scheduler {shown!r}: expected [scheme://]host:port, e.g. tcp://10.0.0.5:8786")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise FusplanInputError(f"--scheduler {shown!r}: port must be a number 1-65535")
    return text


#: Linux prctl option: signal sent to this process when its parent dies (<linux/prctl.h>).
PR_SET_PDEATHSIG = 1
#: How often the fallback watchdog checks that the parent is alive, in s.
WATCHDOG_INTERVAL_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the batch process ``parent_pid`` ends, however it ends.

    Without it, workers of a batch killed with SIGKILL keep simulating and writing
    into ``--out``. On Linux the kernel sends SIGKILL when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread also checks every
    :data:`WATCHDOG_INTERVAL_S` that the parent pid has not changed (a reparented
    worker) and exits at once.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_INTERVAL_S)
        os._exit(1)

    threading.Thread(target=watch, name="fusplan-parent-watchdog", daemon=True).start()


class InlineEngine:
    """Runs tasks in this process (``workers=1``), one by one as results are asked for."""

    def submit(self, fn, *args):
        return _Deferred(fn, args)

    @staticmethod
    def as_completed(futures):
        return iter(futures)

    def close(self, cancel: bool = False):
        pass


class _Deferred:
    """A task run when its result is first asked for (so progress advances per task)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __hash__(self):
        return id(self)

    def result(self):
        return self.fn(*self.args)


class PoolEngine:
    """Local process pool whose workers die with this process (see :func:`die_with_parent`)."""

    def __init__(self, workers: int):
        self.executor = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                                            initargs=(os.getpid(),))

    def submit(self, fn, *args):
        return self.executor.submit(fn, *args)

    @staticmethod
    def as_completed(futures):
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from done

    def close(self, cancel: bool = False):
        self.executor.shutdown(wait=True, cancel_futures=cancel)


class DaskEngine:
    """A Dask distributed client: an existing scheduler, or an embedded LocalCluster."""

    def __init__(self, scheduler: str | None, workers: int):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise FusplanInputError(
                "--dask/--scheduler need Dask distributed, which is not installed "
                "(pip install 'fusplan[dask]')"
            ) from None
        self.cluster = None
        # Dask's scratch space (spilled data, worker lock files) in a folder of our own, removed on close
        self.scratch = tempfile.mkdtemp(prefix="fusplan-dask-")
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                import dask

                with dask.config.set({"temporary-directory": self.scratch}):  # lock files of the scheduler too
                    self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                dashboard_address=None, local_directory=self.scratch)
                    self.client = Client(self.cluster)
        except (OSError, TimeoutError, ValueError, TypeError) as error:  # unreachable, refused, malformed
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise FusplanInputError(f"cannot connect to the Dask scheduler {scheduler!r} ({one_line(error)})") from None
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    @staticmethod
    def as_completed(futures):
        from dask.distributed import as_completed

        return as_completed(list(futures))

    def close(self, cancel: bool = False):
        try:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
