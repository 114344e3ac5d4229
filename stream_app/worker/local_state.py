"""Local table state is trusted only after a clean stop; after a crash it is rebuilt.

The worker keeps a marker file in its data directory while it runs and removes it after the
last commit of a clean stop; when the marker is there at start, the local tables are deleted
and restored from the changelogs. Why: docs/design.md, "Where the worker replaces Faust's
machinery" (item 2).
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

from stream_app.worker.transactions import Checkpoint

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
    Checkpoint.of(app).on_clean_stop.append(state.close_clean)
    return kind
