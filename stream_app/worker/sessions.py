"""The session agent's body: decode, read the table, call the core, write the table, send."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from stream_app.domain import (
    Applied,
    Rejected,
    Skipped,
    StoredSession,
    apply_event,
    apply_verdict,
    decode_event,
    decode_key,
    decode_stored,
    decode_verdict,
    encode_claim,
    encode_json,
    encode_stored,
    profile_key,
    published_snapshot,
    session_too_large,
)
from stream_app.domain import CustomerSession as CustomerSessionT
from stream_app.domain.retention import clock_of, decode_clock, is_expired
from stream_app.settings import ProcessingGuarantee, Settings
from stream_app.worker.dead_letters import DeadLetters, source_headers
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, BatchWriter, Message, Outbox, Table

log = logging.getLogger(__name__)

#: Header on claims naming the partition of the claiming session, where its verdict must go.
SESSION_PARTITION_HEADER = "session-partition"
#: How far past its record's broker timestamp an event's occurredAt can move stream time: a
#: record claiming a far future cannot make every session of its partition expire at once.
MAX_EVENT_TIME_AHEAD = timedelta(hours=1)
#: Stored sessions the retention sweep reads per batch, besides one per record of the batch.
SWEEP_KEYS_PER_BATCH = 16
#: A new sweep pass over a partition starts once stream time has moved this fraction of the
#: shortest retention period since the last one started: a pass also steps over the deletes
#: RocksDB has not compacted away yet, so passes are paced by event time, not run back to back.
SWEEP_PASSES_PER_PERIOD = 16
#: The most time the sweep may take, as a share of the time spent handling records: when it is
#: behind, it waits (sessions then leave later), so retention never slows the stream by more.
SWEEP_SHARE = 0.05


@dataclass
class Sweep:
    """A table partition's retention state: its stream time and where the sweep goes on."""

    #: The latest occurredAt applied on the partition (capped by MAX_EVENT_TIME_AHEAD).
    stream_time: datetime
    #: The rebalance it was started in: a partition may have had another owner since.
    generation: int
    #: The last key the sweep read (None: start a new pass, at `floor`).
    cursor: str | None = None
    #: Where a pass starts (None: the first key). Every key below it was removed by an earlier
    #: pass, so a pass does not step over their deletes again (RocksDB keeps them until it
    #: compacts); a session created below it lowers it.
    floor: str | None = None
    #: The floor of the next pass: the lowest key this pass kept or a batch created.
    next_floor: str | None = None
    #: The last key this pass read.
    last_read: str | None = None
    #: Stream time when the current (or last) pass started.
    pass_started: datetime | None = None
    #: Sessions seen and the oldest last activity in the current pass.
    seen: int = 0
    oldest: datetime | None = None


@dataclass
class SessionProcessor:
    """Handles the records of the session inbox (events, re-keyed events, verdicts)."""

    settings: Settings
    table: Table
    writer: BatchWriter
    metrics: Metrics
    #: The most time the sweep may take, as a share of the time handling records.
    sweep_share: float = SWEEP_SHARE
    #: Seconds, for sweep_share (a fake in tests).
    clock: Callable[[], float] = time.perf_counter
    dead_letters: DeadLetters = field(init=False)
    #: Per table partition this worker has applied events on: stream time and sweep position.
    sweeps: dict[int, Sweep] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.dead_letters = DeadLetters(self.settings, self.metrics)
        self.retention = self.settings.retention
        shortest = self.retention.shortest
        self._pass_interval = (
            timedelta(0) if shortest is None else shortest / SWEEP_PASSES_PER_PERIOD
        )
        #: Time spent handling records and sweeping, for SWEEP_SHARE.
        self._handling_seconds = 0.0
        self._sweep_seconds = 0.0

    async def handle(self, message: Message) -> None:
        """Process one consumed record; every outcome is a send or a counted skip."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Process consecutive records of one partition in order, then send and store.

        Each session is read once and written once per batch (BatchState); the records the
        batch sends are collected in an outbox and leave together, before the table's
        changes (BatchWriter.write).
        """
        if not messages:
            return
        self.metrics.observe_batch("sessions", len(messages))
        batch_started = self.clock()
        last = messages[-1]
        sessions = BatchState(self.table, last.partition, decode_stored, encode_stored)
        outbox = Outbox()
        verdicts_topic, input_topic = self.settings.verdicts_topic, self.settings.input_topic
        for message in messages:
            started = time.perf_counter()
            topic = message.topic
            sent_before = len(outbox.records)
            try:
                if topic == verdicts_topic:
                    self.metrics.verdicts_consumed += 1
                    self._handle_verdict(message, sessions, outbox)
                else:
                    if topic == input_topic:
                        self.metrics.events_consumed += 1
                    self._handle_event(message, sessions, outbox)
                    self.metrics.observe_end_to_end(time.time() - message.timestamp)
            except Exception as exc:
                self.dead_letters.failed(exc, message, outbox, sent_before)
            self.metrics.observe_latency(time.perf_counter() - started)
        if self.retention.enabled:
            handled = self.clock()
            self._handling_seconds += handled - batch_started
            if self._sweep_seconds <= self.sweep_share * self._handling_seconds:
                budget = len(messages) + SWEEP_KEYS_PER_BATCH
                self._sweep(last.partition, sessions, outbox, budget)
                self._sweep_seconds += self.clock() - handled
        await self.writer.write(last, outbox, sessions.changes())

    def _sweep(
        self, partition: int, sessions: BatchState[StoredSession], outbox: Outbox, budget: int
    ) -> None:
        """Read the next `budget` stored sessions of the partition; remove the expired ones.

        Runs after the batch's records are applied and takes part in the batch's write, so
        a removal (a changelog tombstone) is committed with the processing that decided it,
        and a session the batch has just updated is judged on its new value and stays.
        """
        sweep = self.sweeps.get(partition)
        if sweep is None or sweep.generation != self.metrics.rebalances:
            return  # no stream time yet: nothing can be judged
        if sweep.cursor is None:
            if sweep.pass_started is not None and (
                sweep.stream_time - sweep.pass_started < self._pass_interval
            ):
                return
            sweep.pass_started = sweep.stream_time
            rows, sweep.cursor = self.table.scan(partition, None, budget, first=sweep.floor)
        else:
            rows, sweep.cursor = self.table.scan(partition, sweep.cursor, budget)
        tombstones = self.settings.retention_snapshot_tombstones
        for key, stored in rows:
            sweep.last_read = key
            if sessions.touched(key):
                state = sessions.get(key)
                if state is None:
                    continue
                clock = clock_of(state)
            else:
                try:
                    clock = decode_clock(stored)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    log.warning("stored session %r of partition %d cannot be read; kept",
                                key, partition)  # fmt: skip
                    continue
            if is_expired(clock, sweep.stream_time, self.retention):
                sessions.delete(key)
                self.metrics.sessions_expired += 1
                if tombstones:
                    outbox.send(self.settings.output_topic, key=key.encode(), value=None)
                continue
            if sweep.next_floor is None or key < sweep.next_floor:
                sweep.next_floor = key
            sweep.seen += 1
            if sweep.oldest is None or clock.updated < sweep.oldest:
                sweep.oldest = clock.updated
        if sweep.cursor is not None:
            return
        # The pass reached the last key: publish what it saw; the next starts at its floor.
        age = 0.0 if sweep.oldest is None else (sweep.stream_time - sweep.oldest).total_seconds()
        self.metrics.swept[partition] = (sweep.seen, max(age, 0.0))
        sweep.floor = sweep.next_floor if sweep.next_floor is not None else sweep.last_read
        sweep.cursor, sweep.next_floor, sweep.seen, sweep.oldest = None, None, 0, None

    def _created(self, partition: int, key: str) -> None:
        """A session created below a sweep's floor is read by its next pass."""
        sweep = self.sweeps.get(partition)
        if sweep is None:
            return
        if sweep.floor is not None and key < sweep.floor:
            sweep.floor = key
        if sweep.next_floor is None or key < sweep.next_floor:
            sweep.next_floor = key

    def _advance_stream_time(self, partition: int, occurred_at: datetime, message: Message) -> None:
        at = min(
            occurred_at,
            datetime.fromtimestamp(message.timestamp, UTC) + MAX_EVENT_TIME_AHEAD,
        )
        sweep = self.sweeps.get(partition)
        if sweep is None or sweep.generation != self.metrics.rebalances:
            self.sweeps[partition] = Sweep(stream_time=at, generation=self.metrics.rebalances)
        elif at > sweep.stream_time:
            sweep.stream_time = at

    def lookup(self, integration_id: str) -> CustomerSessionT | None:
        """The latest snapshot emitted for a session this worker owns, if any."""
        stored = self.table.lookup(integration_id)
        return None if stored is None else published_snapshot(decode_stored(stored))

    def _handle_event(
        self, message: Message, sessions: BatchState[StoredSession], outbox: Outbox
    ) -> None:
        raw: bytes = message.value if message.value is not None else b""
        decoded = decode_event(raw)
        if isinstance(decoded, Rejected):
            self.dead_letters.reject(decoded, message, outbox)
            return
        if message.key is None and message.topic == self.settings.input_topic:
            # The session's state lives on the partition its key hashes to; a record without
            # a key landed anywhere, so it is moved there before it is applied.
            outbox.send(
                self.settings.rekeyed_topic,
                key=decoded.integration_id.encode(),
                value=raw,
                headers=source_headers(message),
            )
            return
        key = decode_key(message.key)
        previous = sessions.get(decoded.integration_id)
        match apply_event(previous, decoded, key):
            case Skipped():
                self.metrics.duplicates += 1
            case Rejected() as rejected:
                self.dead_letters.reject(rejected, message, outbox)
            case Applied() as applied:
                stored = encode_stored(applied.stored)
                snapshot = None if applied.snapshot is None else encode_json(applied.snapshot)
                # A held snapshot is released later as the session is now: measure that.
                shown = snapshot if snapshot is not None else encode_json(applied.stored.session)
                too_large = session_too_large(
                    len(stored), len(shown), self.settings.max_session_bytes
                )
                if too_large is not None:
                    self.dead_letters.reject(too_large, message, outbox)
                    return
                key_bytes = decoded.integration_id.encode()
                if applied.claim is not None:
                    outbox.send(
                        self.settings.claims_topic,
                        key=profile_key(
                            applied.claim.application_id, applied.claim.profile_id
                        ).encode(),
                        value=encode_claim(applied.claim),
                        headers=[(SESSION_PARTITION_HEADER, str(message.partition).encode())],
                    )
                if applied.transition is not None:
                    outbox.send(
                        self.settings.transitions_topic,
                        key=key_bytes,
                        value=encode_json(applied.transition),
                    )
                if snapshot is not None:
                    outbox.send(self.settings.output_topic, key=key_bytes, value=snapshot)
                # Last: a record whose handling raised above changed neither state nor counts.
                sessions.put(decoded.integration_id, applied.stored, stored)
                self._advance_stream_time(message.partition, decoded.occurred_at, message)
                if previous is None:
                    self._created(message.partition, decoded.integration_id)
                self.metrics.applied += 1
                if applied.claim is not None:
                    self.metrics.claims_sent += 1
                if applied.transition is not None:
                    self.metrics.transitions[applied.transition.to] += 1
                self._count_snapshot(snapshot is not None)

    def _handle_verdict(
        self, message: Message, sessions: BatchState[StoredSession], outbox: Outbox
    ) -> None:
        try:
            verdict = decode_verdict(message.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            rejected = Rejected("invalid_internal_record", f"Not a firstSession verdict: {exc}")
            self.dead_letters.reject(rejected, message, outbox)
            return
        stored = sessions.get(verdict.integration_id)
        if stored is None:
            self._verdict_without_session(verdict.integration_id, message, outbox)
            return
        state, released = apply_verdict(stored, verdict)
        if released is not None:
            key = verdict.integration_id.encode()
            outbox.send(self.settings.output_topic, key=key, value=encode_json(released))
        sessions.put(verdict.integration_id, state)
        self.metrics.verdicts_applied += 1
        if released is not None:
            self._count_snapshot(sent=True)

    def _verdict_without_session(
        self, integration_id: str, message: Message, outbox: Outbox
    ) -> None:
        """A verdict whose session is not in the local table: never dropped unseen.

        Under at_least_once the verdict can legitimately come first: the claiming event's
        state change was lost with its worker, its offset was not committed, and when it is
        applied again it sends a new claim, which gets the same answer. It is counted.
        Under exactly_once a claim leaves only together with the state of the session that
        made it, so the worker never wrote this verdict's claim: it is dead-lettered as
        `invalid_internal_record` (a record some other producer wrote on the verdicts topic,
        or a table behind its changelog) and the partition goes on.
        """
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        self.metrics.verdicts_without_session += 1
        if self.settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE:
            log.error("verdict %s for session %r, which is not in the local table; "
                      "dead-lettered", where, integration_id)  # fmt: skip
            rejected = Rejected(
                "invalid_internal_record",
                f"Verdict for session {integration_id!r}, which this partition does not hold",
            )
            self.dead_letters.reject(rejected, message, outbox)
            return
        log.warning(
            "verdict %s for session %r before the session's state; its claim will be sent "
            "again when the claiming event is applied again",
            where,
            integration_id,
        )

    def _count_snapshot(self, sent: bool) -> None:
        if sent:
            self.metrics.snapshots_sent += 1
        else:
            # Held back until the firstSession verdict arrives (contract section 5).
            self.metrics.snapshots_held += 1
