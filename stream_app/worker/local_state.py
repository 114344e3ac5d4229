"""Local table state is trusted only after a clean stop; after a crash it is rebuilt.

Faust writes a table assignment to RocksDB at once, but under exactly_once its changelog record
only counts once the transaction commits. A worker killed with an open transaction leaves
RocksDB holding writes of events whose outputs and offsets were aborted. Recovery replays the
changelog only from the offset it last persisted, so those writes survive; when the event is
consumed again it looks applied already (its eventId is in the session), it is skipped, and its
snapshot, transition or claim is never emitted. A session created in such a transaction with a
pending profile claim even waits for a verdict forever, emitting nothing at all.

Persisted changelog offsets cannot help: they say how far the local tables have *read* the
changelog, not which local writes were never committed (and Faust does not even persist them
under exactly_once, see recovery.py), so replaying from them leaves those writes in place.

So the worker keeps a marker file in its data directory while it runs and removes it after its
last commit on a clean stop. Starting with the marker present means the previous run did not
stop cleanly: the local tables are deleted and rebuilt from the changelogs, read with isolation
level read_committed under exactly_once, which is the committed state exactly. Kafka Streams
does the same under exactly-once (it wipes a task's stores when no checkpoint was written at a
clean close). At-least-once gets the same treatment: there the changelog is the only state other
workers and standbys can see, and a local copy ahead of it would diverge from them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from stream_app.worker.transactions import ProcessingGuard

log = logging.getLogger(__name__)

MARKER_NAME = "stream-app.running"


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
        """Before the tables open: discard them after an unclean stop, then mark running."""
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
    ProcessingGuard.of(app).on_clean_stop.append(state.close_clean)
    return kind
