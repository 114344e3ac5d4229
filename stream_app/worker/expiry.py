"""Retention in the worker: stream time, the expiry index, and the sweep (contract section 10).

The rules are the pure core's (stream_app/domain/retention.py); this is where they meet the
tables. Beside the sessions table the worker keeps an expiry index, a table of its own with its
own changelog: one entry per session that can expire, keyed by its state and the bucket of its
last activity (`index_key`), so the sessions that are due are the first entries of each state's
range. Each handled batch of a partition then:

1. sweeps: reads the due entries of each state (a bounded number per batch), and removes their
   sessions from the batch's state (a delete, so a changelog tombstone) and the entries;
2. keeps the index in step with the batch: every session the batch changed moves to its new
   entry (or leaves the index: removed, held for a firstSession verdict, or kept for ever);
3. writes the index changes with the batch (`write`), after the sessions table's: in the same
   transaction under exactly_once, behind the batch's outputs under at_least_once.

So a removal is decided, written and committed with the batch, a restore brings back the
index with the sessions, and the sweep reads only sessions that are due: its work follows the
sessions that expire, not the sessions stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from stream_app.domain import StoredSession
from stream_app.domain.outputs import SessionStatus
from stream_app.domain.retention import (
    STATE_CODES,
    clock_of,
    decode_clock,
    due_before,
    entry_time,
    index_key,
    indexed_session,
    is_expired,
)
from stream_app.settings import Settings
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, BatchWriter, Message, Outbox, Table

log = logging.getLogger(__name__)

#: How far past its record's broker timestamp an event's occurredAt can move stream time: a
#: record claiming a far future cannot make every session of its partition expire at once.
MAX_EVENT_TIME_AHEAD = timedelta(hours=1)
#: Index entries the sweep reads per batch, besides one per record of the batch.
SWEEP_ENTRIES_PER_BATCH = 16
#: The most time the sweep may take, as a share of the time spent handling records, while it is
#: behind (more sessions due than a batch's budget, e.g. after a retention was shortened): it
#: then skips batches and sessions leave later, so retention never slows the stream by more.
SWEEP_SHARE = 0.25
#: An index entry has no value: its key says everything.
PRESENT = b""


@dataclass
class PartitionClock:
    """A table partition's stream time and where its sweep goes on in each state's range."""

    #: The latest occurredAt applied on the partition (capped by MAX_EVENT_TIME_AHEAD).
    stream_time: datetime
    #: The rebalance it was started in: the partition may have had another owner since.
    generation: int
    #: Per state code, the last index entry the sweep removed (None: the range's start). The
    #: sweep goes on after it, not over the deletes RocksDB has not compacted away yet.
    cursors: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Expiry:
    """Stream time, the expiry index and the sweep, for the session processor."""

    settings: Settings
    #: The sessions table (for the stored-sessions metric).
    table: Table
    #: The expiry index (a table of its own) and its writer.
    index: Table
    writer: BatchWriter
    metrics: Metrics
    #: The most time the sweep may take, as a share of the time handling records.
    sweep_share: float = SWEEP_SHARE
    #: Seconds, for sweep_share (a fake in tests).
    clock: Callable[[], float] = time.perf_counter
    #: Per table partition this worker has applied events on.
    partitions: dict[int, PartitionClock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.retention = self.settings.retention
        self._handling_seconds = 0.0
        self._sweep_seconds = 0.0
        # Whether the last sweep left due entries for later (it used its whole budget): only
        # then is it held to its share of the time; otherwise it is a few index reads.
        self._behind = False
        # The states that can expire, in the order the sweep reads their ranges.
        self._states: list[SessionStatus] = [
            state for state in STATE_CODES if self.retention.period(state) is not None
        ]

    def advance(self, partition: int, occurred_at: datetime, message: Message) -> None:
        """An event applied on `partition` moves its stream time (never backwards)."""
        clock = self._current(partition)
        if clock is not None and occurred_at <= clock.stream_time:
            return  # most events: the cap below is only needed for one that moves the clock
        at = min(occurred_at, datetime.fromtimestamp(message.timestamp, UTC) + MAX_EVENT_TIME_AHEAD)
        if clock is None:
            self.partitions[partition] = PartitionClock(at, self.metrics.rebalances)
        elif at > clock.stream_time:
            clock.stream_time = at

    def stream_time(self, partition: int) -> datetime | None:
        """The partition's stream time, if an event was applied since its last assignment."""
        clock = self._current(partition)
        return None if clock is None else clock.stream_time

    def _current(self, partition: int) -> PartitionClock | None:
        """The partition's clock, unless none was started since its last assignment."""
        clock = self.partitions.get(partition)
        if clock is None or clock.generation != self.metrics.rebalances:
            return None
        return clock

    def end_batch(
        self,
        partition: int,
        sessions: BatchState[StoredSession],
        outbox: Outbox,
        records: int,
        batch_started: float,
    ) -> list[tuple[str, bytes | None]]:
        """Sweep the partition's due sessions into the batch, then the index changes.

        `batch_started` is this object's clock when the batch's handling began.
        """
        changes: dict[str, bytes | None] = {}
        handled = self.clock()
        self._handling_seconds += handled - batch_started
        if not self._behind or self._sweep_seconds <= self.sweep_share * self._handling_seconds:
            budget = records + SWEEP_ENTRIES_PER_BATCH
            self._behind = self._sweep(partition, sessions, outbox, budget, changes)
            self._sweep_seconds += self.clock() - handled
        clock = self._current(partition)
        for key, before, after in sessions.changed():
            old = None if before is None else index_key(key, clock_of(before), self.retention)
            new = None if after is None else index_key(key, clock_of(after), self.retention)
            if old == new:
                continue
            if old is not None:
                changes[old] = None
            if new is not None:
                changes[new] = PRESENT
                if clock is not None and new <= (clock.cursors.get(new[0]) or ""):
                    clock.cursors[new[0]] = None  # behind the sweep: read the range again
        return list(changes.items())

    async def write(self, source: Message, changes: list[tuple[str, bytes | None]]) -> None:
        """Store the index changes of a batch, after its sessions (same unit of work)."""
        if changes:
            await self.writer.write(source, Outbox(), changes)

    def _sweep(
        self,
        partition: int,
        sessions: BatchState[StoredSession],
        outbox: Outbox,
        budget: int,
        changes: dict[str, bytes | None],
    ) -> bool:
        """Remove due sessions, at most `budget`; whether due entries were left for later."""
        position = self._current(partition)
        if position is None:
            return False  # no stream time since the partition was assigned: nothing to judge
        now = position.stream_time
        snapshot_tombstones = self.settings.retention_snapshot_tombstones
        #: Per state, the bucket of the first entry left: its least recently active session.
        left: list[datetime] = []
        for state in self._states:
            code = STATE_CODES[state]
            due = due_before(state, now, self.retention)
            assert due is not None  # _states holds only states that expire
            cursor = position.cursors.get(code)
            # Only the due entries are read, and the first one after them (the oldest left).
            start = code if cursor is None else cursor + "\0"
            entries, following = self.index.scan(partition, start, due, budget)
            if following is not None and following.startswith(code):
                at = entry_time(following, self.retention)
                if at is not None:
                    left.append(at)
            for entry, _ in entries:
                budget -= 1
                key = indexed_session(entry)
                changes[entry] = None
                position.cursors[code] = entry
                try:
                    if sessions.touched(key):
                        session = sessions.get(key)
                        session_clock = None if session is None else clock_of(session)
                    else:
                        # Only the clock is decoded: the session itself is not needed.
                        stored = self.table.get(partition, key)
                        session_clock = None if stored is None else decode_clock(stored)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.warning("stored session %r of partition %d cannot be read; kept",
                                key, partition)  # fmt: skip
                    continue
                # A session whose entry moved (or which is gone) just leaves its old entry.
                if session_clock is None or not is_expired(session_clock, now, self.retention):
                    continue
                sessions.delete(key)
                self.metrics.sessions_expired += 1
                if snapshot_tombstones:
                    outbox.send(self.settings.output_topic, key=key.encode(), value=None)
        age = 0.0 if not left else (now - min(left)).total_seconds()
        self.metrics.swept[partition] = (self.table.count(partition), max(age, 0.0))
        return budget == 0
