"""A data directory belongs to one live worker: a second one is refused, nothing is deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app.worker.overrides.local_state import (
    MARKER_NAME,
    DataDirInUse,
    LocalState,
    StartKind,
    lock_data_dir,
)

# Run in a child process: the lock is the process's, so only another process can be refused.
CHILD = """
import sys
from pathlib import Path
from stream_app.worker.overrides.local_state import DataDirInUse, lock_data_dir
try:
    lock_data_dir(Path(sys.argv[1]))
except DataDirInUse as exc:
    print(exc)
    sys.exit(3)
print("locked")
"""


def _lock_in_child(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir)], capture_output=True, text=True, check=False
    )


def test_a_second_process_cannot_take_a_locked_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    lock_data_dir(data_dir)
    child = _lock_in_child(data_dir)
    assert child.returncode == 3, child.stderr
    assert f"pid {os.getpid()}" in child.stdout
    assert "its own STREAM_APP_DATA_DIR" in child.stdout


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    # A worker killed with -9 leaves no lock behind (the kernel releases an flock).
    assert _lock_in_child(tmp_path).stdout.strip() == "locked"
    assert _lock_in_child(tmp_path).stdout.strip() == "locked"


def test_locking_twice_in_one_process_is_allowed(tmp_path: Path) -> None:
    lock_data_dir(tmp_path)
    lock_data_dir(tmp_path)


def test_a_live_workers_tables_are_never_deleted(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables"
    tables.mkdir(parents=True)
    (tables / "sessions-0.db").write_bytes(b"state")
    (tmp_path / MARKER_NAME).write_text("pid 1\n")  # the live worker's running marker
    holder = subprocess.Popen(
        [sys.executable, "-c", CHILD + "import time; time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirInUse):
            LocalState(tmp_path, tables).open()
        assert (tables / "sessions-0.db").read_bytes() == b"state"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    # Once that worker is gone, its marker says it did not stop cleanly: tables are rebuilt.
    assert LocalState(tmp_path, tables).open() is StartKind.WIPED
    assert not tables.exists()


def test_the_data_directory_is_readable_by_the_worker_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    data_dir.mkdir(mode=0o755)
    lock_data_dir(data_dir)
    assert data_dir.stat().st_mode & 0o777 == 0o700
