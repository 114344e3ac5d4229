"""Local table state is trusted only after a clean stop; after a crash it is rebuilt.

The worker keeps a marker file in its data directory while it runs and removes it after the
last commit of a clean stop; when the marker is there at start, the local tables are deleted
and restored from the changelogs. Why: docs/design.md, "Where the worker replaces Faust's
machinery" (item 2).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER_NAME = "stream-app.running"
LOCK_NAME = "stream-app.lock"


class DataDirInUse(RuntimeError):
    """Another live worker holds the data directory."""


#: Data directories this process holds, with the descriptor that keeps each lock.
_held_locks: dict[Path, int] = {}


def lock_data_dir(data_dir: Path) -> None:
    """Hold an exclusive lock on `data_dir` for the rest of this process's life.

    Two workers on one directory would share RocksDB files and each would take the other's
    running marker for a crash and delete its tables. The lock is an flock, so the kernel
    releases it when the process ends, however it ends: a kill -9 leaves no stale lock.
    Calling it again in the same process is a no-op.
    """
    path = data_dir.resolve()
    if path in _held_locks:
        return
    # Sessions hold personal data: only the worker's user may read its state.
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # a mount point owned by another user
        path.chmod(0o700)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DataDirInUse(
            f"data directory {path} is in use by a running worker ({holder}); "
            "give each worker on this machine its own STREAM_APP_DATA_DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}\n".encode())
    _held_locks[path] = fd


class StartKind(StrEnum):
    """How the local state was found at start."""

    FRESH = "fresh"  # no local tables yet
    CLEAN = "clean"  # the previous run stopped cleanly: tables kept
    WIPED = "wiped"  # the previous run did not stop cleanly: tables deleted, restored from Kafka


@dataclass(frozen=True, slots=True)
class LocalState:
    """The worker's data directory and its table directory."""

    data_dir: Path
    table_dir: Path

    @property
    def marker(self) -> Path:
        """The file that exists while a worker runs on this data directory."""
        return self.data_dir / MARKER_NAME

    def open(self) -> StartKind:
        """Before the tables open: discard them after an unclean stop, then mark running.

        Takes the data directory's lock first (lock_data_dir), so that the marker of another
        live worker is never taken for a crash.
        """
        lock_data_dir(self.data_dir)
        has_tables = self.table_dir.exists() and any(self.table_dir.iterdir())
        kind = StartKind.CLEAN if has_tables else StartKind.FRESH
        if self.marker.exists():
            if has_tables:
                log.warning(
                    "the previous worker on %s did not stop cleanly: deleting local tables %s, "
                    "they are rebuilt from the changelog topics",
                    self.data_dir,
                    self.table_dir,
                )
                shutil.rmtree(self.table_dir)
                kind = StartKind.WIPED
            else:
                kind = StartKind.FRESH
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _write_durably(self.marker, f"pid {os.getpid()} started {time.time():.3f}\n".encode())
        return kind

    def close_clean(self) -> None:
        """After the last commit of a clean stop: the local tables can be trusted again."""
        try:
            self.marker.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.data_dir)
        log.info("local tables in %s closed cleanly", self.table_dir)


def _write_durably(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def protect_local_state(app: Any, data_dir: Path) -> StartKind:
    """Call before the app starts: check the marker, then clear it after a clean stop's commit."""
    state = LocalState(data_dir, Path(app.conf.tabledir))
    kind = state.open()
    log.info("local tables in %s: %s start", state.table_dir, kind.value)
    # The app's checkpoint (checkpoint.py) calls it after the last commit of a clean stop.
    app.checkpoint.on_clean_stop.append(state.close_clean)
    return kind
