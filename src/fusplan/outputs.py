"""Output folder housekeeping: one writer at a time, no leftovers of killed writes, one result set.

Small tools shared by the writers (:mod:`fusplan.report`, :mod:`fusplan.batch`, the CLI):

- :func:`check_output_dir`: refuses, in about a second and before any work, an output
  folder that cannot be created or written (it creates and writes a probe file, then
  removes both).
- :func:`staged_result_set`: a result set written into a hidden staging folder and moved
  into place with ``report.json`` (what readers take as "complete") removed first and
  moved last, so a write killed midway never leaves an old report beside new maps.

- :func:`lock_output_dir`: an exclusive ``fcntl.flock`` on ``.fusplan.lock`` inside the
  folder, so two batches cannot write into the same ``--out`` at once (the second is
  refused naming the first one's pid). The lock is released when its holder exits,
  however it exits (the kernel drops it with the last open descriptor).
- :func:`clean_stale_writes`: removes the staging folders and temporary files that a
  write killed midway left behind (their names carry the writer's pid; only those of
  processes no longer alive are removed).
- :func:`record_outputs`: keeps ``.fusplan-outputs.json``, the list of files each
  writer (``"report"``, ``"targets"``) put in the folder with their size and SHA-256; a
  new result set removes the files of the previous one it did not write again (a
  ``lesion_17cem43_left.nii.gz`` of an earlier protocol), and never a file fusplan
  did not write or that changed since.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from collections.abc import Iterable, Iterator

from .errors import FusplanInputError
from .textfile import display_path

__all__ = [
    "LOCK_NAME", "OUTPUTS_MANIFEST", "STAGING_PREFIX", "check_output_dir", "clean_stale_writes", "lock_output_dir",
    "record_outputs", "remove_if_unused", "staged_result_set", "staging_prefix", "temp_prefix",
]

LOCK_NAME = ".fusplan.lock"
OUTPUTS_MANIFEST = ".fusplan-outputs.json"
#: Staging folders of :func:`fusplan.report.write_report`: ``.fusplan-staging-<pid>-<random>``.
STAGING_PREFIX = ".fusplan-staging-"
#: Temporary files of :func:`fusplan.io.atomic_output`: ``.<name>.fusplan-<pid>-<random>.tmp<suffix>``.
_TEMP_FILE = re.compile(r"^\..*\.fusplan-(\d+)-[^/]*\.tmp[^/]*$")
_STAGING_DIR = re.compile(r"^" + re.escape(STAGING_PREFIX) + r"(\d+)-")


def check_output_dir(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """Refuse an output folder that cannot be one, before any work starts.

    Refused: an empty name (``--out ""`` would write into the current folder), a name
    too long for the file system, an existing path that is not a folder (a file, a
    dangling link, a FIFO), a path whose parent is a file, and a folder that cannot be
    created or written (``/proc/x``, a read-only mount, no permission even for root): the
    folder is created and a probe file written and removed; folders this check created
    are removed again.

    Returns
    -------
    Path
        The folder (it may not exist yet; writers create it).
    """
    if not str(os.fspath(path)).strip():
        raise FusplanInputError(f"{what}: empty output folder name (give a folder, e.g. {what} results)")
    path = Path(path)
    name = display_path(path)
    too_long = [part for part in path.parts if len(os.fsencode(part)) > 255]
    if too_long or len(os.fsencode(path)) > 4000:
        raise FusplanInputError(f"{what} {name}: name too long for the file system")
    if path.is_symlink() and not path.exists():
        raise FusplanInputError(f"{what} {name}: is a link to nothing (dangling symlink)")
    if path.exists() and not path.is_dir():
        raise FusplanInputError(f"{what} {name}: exists and is not a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise FusplanInputError(f"{what} {name}: {display_path(parent)} is a file, not a folder")
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=temp_prefix("probe"), suffix=".tmp", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise FusplanInputError(f"{what} {name}: cannot create or write the output folder ({reason})") from None
    finally:
        for folder in created:  # deepest first: leave the file system as it was
            with contextlib.suppress(OSError):
                folder.rmdir()
    return path


@contextlib.contextmanager
def staged_result_set(out_dir: str | os.PathLike, written: list[Path], *, last: str = "report.json") -> Iterator[Path]:
    """A hidden folder inside ``out_dir``; on success its files are moved into ``out_dir``.

    Before the first move the previous ``last`` file is removed, and ``last`` is moved
    after every other file: a write killed midway leaves no ``last`` (readers see no
    complete result) rather than an old one beside new maps. The final paths are
    appended to ``written``. On failure nothing is moved and the staging folder is removed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FusplanInputError(f"{display_path(out_dir)}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_writes(out_dir)  # what a killed earlier write left
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=out_dir))
    try:
        yield staging
        sources = sorted(staging.iterdir(), key=lambda p: (p.name == last, p.name))
        with contextlib.suppress(FileNotFoundError):
            (out_dir / last).unlink()
        for source in sources:
            target = out_dir / source.name
            os.replace(source, target)
            written.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_if_unused(folder: str | os.PathLike) -> bool:
    """Remove ``folder`` when it holds nothing but fusplan's lock and empty folders (a batch
    that failed before writing anything); returns True when removed."""
    folder = Path(folder)
    try:
        for root, _dirs, files in os.walk(folder):
            if any(not (Path(root) == folder and name == LOCK_NAME) for name in files):
                return False
        shutil.rmtree(folder)
    except OSError:
        return False
    return True


def temp_prefix(name: str) -> str:
    """``mkstemp`` prefix of a temporary file for ``name`` written by this process."""
    return f".{name}.fusplan-{os.getpid()}-"


def staging_prefix() -> str:
    """``mkdtemp`` prefix of a staging folder made by this process."""
    return f"{STAGING_PREFIX}{os.getpid()}-"


@contextlib.contextmanager
def lock_output_dir(out_dir: str | os.PathLike, *, what: str = "batch") -> Iterator[Path]:
    """Hold an exclusive lock on ``out_dir`` (created if needed) for the ``with`` block.

    Raises
    ------
    FusplanInputError
        ``<out_dir>: is in use by another batch (pid N)`` when another process holds it.
    """
    import fcntl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock_path = out / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as error:
        raise FusplanInputError(f"{display_path(out)}: cannot lock the output folder "
                                f"({error.strerror or type(error).__name__})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FusplanInputError(f"{display_path(out)}: cannot lock the output folder "
                                        f"({error.strerror or type(error).__name__})") from None
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise FusplanInputError(f"{display_path(out)}: is in use by another {what} (pid {holder}); "
                                    "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield out
    finally:
        os.close(fd)  # releases the lock


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_writes(folder: str | os.PathLike) -> list[Path]:
    """Remove staging folders and temporary files in ``folder`` left by writers no longer alive.

    Only names fusplan gives its temporary outputs are considered (see
    :func:`temp_prefix`, :func:`staging_prefix`); a name whose pid is a running
    process is left alone (that write may still be going on). Not recursive.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING_DIR.match(entry.name) or _TEMP_FILE.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def record_outputs(out_dir: str | os.PathLike, writer: str, written: Iterable[str | os.PathLike]) -> list[Path]:
    """Make ``written`` the result set of ``writer`` in ``out_dir``; remove that writer's older files.

    Call it after every file of the new result set is in place. Files listed for
    ``writer`` in the previous ``.fusplan-outputs.json`` and not in ``written`` are
    removed when they are still exactly what fusplan wrote (regular file, same size
    and SHA-256; the manifest holds no times, so reruns stay byte-identical); files of other writers, files fusplan never listed and
    files changed since are kept. The manifest is written last, atomically.

    Returns
    -------
    list of Path
        The files removed.
    """
    out = Path(out_dir)
    manifest = _read_manifest(out / OUTPUTS_MANIFEST)
    new = {}
    for path in written:
        path = Path(path)
        if path.parent.resolve() != out.resolve():
            continue  # only files directly in the folder are tracked
        new[path.name] = {"size": path.lstat().st_size, "sha256": _sha256(path)}
    removed = []
    for name, facts in manifest.get(writer, {}).items():
        if name in new or not _plain_name(name) or not isinstance(facts, dict):
            continue
        path = out / name
        try:
            info = path.lstat()
        except OSError:
            continue
        if (stat.S_ISREG(info.st_mode) and info.st_size == facts.get("size")
                and _sha256(path) == facts.get("sha256")):
            path.unlink()
            removed.append(path)
    manifest[writer] = dict(sorted(new.items()))
    _write_atomically(out / OUTPUTS_MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return removed


def _write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file and one rename (as :func:`fusplan.io.atomic_output`)."""
    handle, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name \
        and name not in (OUTPUTS_MANIFEST, LOCK_NAME)


def _read_manifest(path: Path) -> dict:
    """The previous manifest, or an empty one when it is missing or damaged (nothing is then removed)."""
    from .textfile import parse_json, read_text_limited

    if not path.is_file():
        return {}
    try:
        doc = parse_json(read_text_limited(path, what="output manifest"), label=display_path(path))
    except FusplanInputError:
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, dict)} if isinstance(doc, dict) else {}
