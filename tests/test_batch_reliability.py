"""Batch reliability: one batch per output folder, workers die with the batch, leftovers of
killed writes are cleaned, non-regular inputs and odd manifest cells are refused (exit 2).

The batches run the quick gaussian protocol in the phantom (a fraction of a second per run);
the lock and the killed-parent tests run ``python -m fusplan batch`` in a subprocess.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusplan.batch import RUNS_DIR, plan_runs, run_batch
from fusplan.cli import main
from fusplan.errors import FusplanInputError
from fusplan.outputs import LOCK_NAME, lock_output_dir

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture()
def protocol_file(staged_protocol_file) -> Path:
    return staged_protocol_file


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _batch_command(protocol_file: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fusplan", "batch", "--phantom", "--protocol", str(protocol_file),
            "--out", str(out), "--no-progress", *extra]


def _children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ------------------------------------------------------------------ one batch per --out


def test_a_second_batch_on_the_same_out_is_refused_naming_the_holder(tmp_path, protocol_file):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom fusplan.outputs import lock_output_dir\n"
         f"with lock_output_dir({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(60)\n"],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(_batch_command(protocol_file, out), env=_env(), capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"is in use by another batch (pid {holder.pid})" in lines[0]
        assert not (out / "summary.csv").exists()  # the second batch wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its holder: the same command now runs.
    third = subprocess.run(_batch_command(protocol_file, out), env=_env(), capture_output=True, text=True,
                           timeout=120)
    assert third.returncode == 0, third.stderr


def test_lock_in_process_is_exclusive_and_released(tmp_path):
    with lock_output_dir(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    with lock_output_dir(tmp_path):  # released on exit: can be taken again
        pass


def test_killed_batch_takes_its_workers_with_it(tmp_path, protocol_file):
    out = tmp_path / "out"
    sweep = "peak_c=" + ",".join(f"{50 + 0.25 * i:g}" for i in range(40))
    batch = subprocess.Popen(_batch_command(protocol_file, out, "--workers", "2", "--sweep", sweep), env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = _children(batch.pid)
        assert len(workers) >= 2, "the batch did not start its worker processes"
        while time.monotonic() < deadline and not list((out / RUNS_DIR).glob("*.json")):
            time.sleep(0.1)  # the workers are simulating
        os.kill(batch.pid, signal.SIGKILL)
        batch.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed batch"
    finally:
        if batch.poll() is None:
            batch.kill()
    reports = sorted(p.name for p in (out / RUNS_DIR).glob("*.json"))
    time.sleep(1.0)
    assert sorted(p.name for p in (out / RUNS_DIR).glob("*.json")) == reports  # nobody writes any more
    assert len(reports) < 40


def test_leftovers_of_killed_writes_are_removed_on_the_next_run(tmp_path, protocol_file):
    out = tmp_path / "out"
    dead = _dead_pid()
    (out / RUNS_DIR).mkdir(parents=True)
    stale = [out / f".fusplan-staging-{dead}-abc123", out / f".summary.csv.fusplan-{dead}-x1.tmp.csv",
             out / RUNS_DIR / f".r.json.fusplan-{dead}-x2.tmp.json"]
    stale[0].mkdir()
    (stale[0] / "report.json").write_text("half")
    for path in stale[1:]:
        path.write_text("half")
    live = out / RUNS_DIR / f".r.json.fusplan-{os.getpid()}-x3.tmp.json"  # a write still going on
    live.write_text("in progress")
    user_file = out / ".notes.tmp"  # not a name fusplan gives its temporary files
    user_file.write_text("mine")
    result = run_batch(phantom=True, protocol=protocol_file, out_dir=out, workers=1, progress=False)
    assert result.n_failed == 0
    assert not [p for p in stale if p.exists()]
    assert live.exists() and user_file.exists()


# ------------------------------------------------------------------ inputs refused before reading


def test_non_regular_scans_are_refused_before_hashing(tmp_path, protocol_file, capsys):
    fifo = tmp_path / "pipe.nii"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.nii.gz"
    zero.symlink_to("/dev/zero")
    for scan in (fifo, zero):
        assert main(["batch", str(scan), "--protocol", str(protocol_file), "--out", str(tmp_path / "out"),
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"{scan}: is not a regular file" in err


def test_fifo_in_a_manifest_is_refused_in_a_subprocess(tmp_path, protocol_file):
    """The real thing: without the check, hashing the FIFO blocks for ever (timeout)."""
    os.mkfifo(tmp_path / "pipe.nii.gz")
    os.mkfifo(tmp_path / "proto.yaml")
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan,protocol\npipe.nii.gz,gaussian.yaml\n,proto.yaml\n")
    done = subprocess.run([sys.executable, "-m", "fusplan", "batch", str(manifest), "--out", str(tmp_path / "o"),
                           "--no-progress"], env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pipe.nii.gz: is not a regular file" in done.stderr and "proto.yaml: is not a regular file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_fifo_manifest_and_an_oversized_one_are_refused(tmp_path):
    fifo = tmp_path / "m.csv"
    os.mkfifo(fifo)
    with pytest.raises(FusplanInputError, match="m.csv: manifest is not a regular file"):
        plan_runs([fifo])
    big = tmp_path / "big.csv"
    big.write_text("scan\n" + "a.nii\n" * 300_000)
    with pytest.raises(FusplanInputError, match="big.csv: manifest is .* bytes, more than"):
        plan_runs([big])


@pytest.mark.parametrize("cell, message", [
    ("2020-01-01", "row 2: treatment.duration_s: a date value is not allowed"),
    ("!!binary aGVsbG8=", "row 2: treatment.duration_s: a bytes value is not allowed"),
])
def test_date_and_bytes_cells_refuse_the_manifest(tmp_path, protocol_file, cell, message, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"scan,protocol,treatment.duration_s\n,gaussian.yaml,{cell}\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_nul_in_a_manifest_is_refused_naming_the_line(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"scan,peak_c\n,5\x006\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "m.csv: line 2 contains a NUL character" in capsys.readouterr().err


def test_manifest_cells_are_yaml_1_2_numbers(tmp_path, protocol_file):
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan,protocol,treatment.cooling_s\n,gaussian.yaml,1e1\n")
    [(spec, protocol)] = plan_runs([manifest])
    assert spec.overrides == (("treatment.cooling_s", 10.0),) and spec.problem is None


def test_over_long_names_are_refused_naming_the_path(tmp_path, protocol_file, capsys):
    long_name = "x" * 300 + ".nii"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"scan,protocol\n{long_name},gaussian.yaml\n")
    for inputs in ([str(tmp_path / long_name)], [str(manifest)]):
        assert main(["batch", *inputs, "--protocol", str(protocol_file), "--out", str(tmp_path / "out"),
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "xxxx.nii: cannot read (File name too long)" in err


def test_a_folder_that_cannot_be_searched_is_refused_naming_it(tmp_path, protocol_file, monkeypatch):
    """As root no folder is unsearchable, so the refusal of the system is played by os.stat."""
    from fusplan.batch import inputs

    locked = tmp_path / "locked"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(locked)):
            raise PermissionError(13, "Permission denied")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(inputs.os, "stat", stat)
    with pytest.raises(FusplanInputError, match=r"locked/a.nii: cannot read \(Permission denied\)$"):
        plan_runs([locked / "a.nii"], protocol=protocol_file)
    manifest = tmp_path / "m.csv"
    manifest.write_text("scan,protocol\nlocked/b.nii,gaussian.yaml\n")
    with pytest.raises(FusplanInputError, match=r"locked/b.nii: cannot read \(Permission denied\)$"):
        plan_runs([manifest])


# ------------------------------------------------------------------ cached registrations


@pytest.mark.slow
def test_a_damaged_cached_registration_is_registered_again(tmp_path, protocol_file):
    from fusplan import registration
    from fusplan.atlas import sample_scan_path

    scan = tmp_path / "head.nii.gz"
    scan.symlink_to(sample_scan_path("ch2"))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"scan,side,protocol\nhead.nii.gz,left,{protocol_file.name}\n")
    out = tmp_path / "out"
    first = run_batch([manifest], out, workers=1, progress=False, registration_preset="affine")  # quickest preset
    assert first.n_failed == 0
    [cache] = (out / "registration").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:-100])  # truncated: fails validation
    for report in (out / RUNS_DIR).glob("*.json"):
        report.unlink()
    again = run_batch([manifest], out, workers=1, progress=False, registration_preset="affine")
    assert again.n_failed == 0, [r["error"] for r in again.rows]  # registered afresh instead of failing the run
    registration.load_registration(cache)  # and the cache is valid again
