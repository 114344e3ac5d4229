"""The session agent's body: decode, read the table, call the core, write the table, send."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from stream_app.settings import ProcessingGuarantee, Settings
from stream_app.worker.dead_letters import DeadLetters, source_headers
from stream_app.worker.expiry import Expiry
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, BatchWriter, Message, Outbox, Table
from stream_app.worker.stats import StatsSource, decode_tick

log = logging.getLogger(__name__)

#: Header on claims naming the partition of the claiming session, where its verdict must go.
SESSION_PARTITION_HEADER = "session-partition"


@dataclass
class SessionProcessor:
    """Handles the records of the session inbox (events, re-keyed events, verdicts)."""

    settings: Settings
    table: Table
    writer: BatchWriter
    metrics: Metrics
    #: Retention (stream time, the expiry index, the sweep); None: sessions are kept for ever.
    expiry: Expiry | None = None
    #: Windowed statistics (counts, partials, watermarks); None: statistics are off.
    stats: StatsSource | None = None
    dead_letters: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self.dead_letters = DeadLetters(self.settings, self.metrics)

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
        batch_started = 0.0 if self.expiry is None else self.expiry.clock()
        last = messages[-1]
        sessions = BatchState(self.table, last.partition, decode_stored, encode_stored)
        # Events and verdicts are keyed by their session's integrationId: one read for all.
        sessions.prefetch(key for m in messages if (key := decode_key(m.key)) is not None)
        outbox = Outbox()
        verdicts_topic, input_topic = self.settings.verdicts_topic, self.settings.input_topic
        ticks_topic = self.settings.stats_ticks_topic
        for message in messages:
            started = time.perf_counter()
            topic = message.topic
            sent_before = len(outbox.records)
            try:
                if topic == verdicts_topic:
                    self.metrics.verdicts_consumed += 1
                    self._handle_verdict(message, sessions, outbox)
                elif topic == ticks_topic:
                    self._handle_tick(message, outbox)
                else:
                    if topic == input_topic:
                        self.metrics.events_consumed += 1
                    self._handle_event(message, sessions, outbox)
                    self.metrics.observe_end_to_end(time.time() - message.timestamp)
            except Exception as exc:
                self.dead_letters.failed(exc, message, outbox, sent_before)
            self.metrics.observe_latency(time.perf_counter() - started)
        stats = self.stats
        if stats is not None:
            stats.end_batch(last, outbox)
        expiry = self.expiry
        if expiry is None:
            await self.writer.write(last, outbox, sessions.changes())
            return
        index_changes = expiry.end_batch(
            last.partition, sessions, outbox, len(messages), batch_started
        )
        await self.writer.write(last, outbox, sessions.changes())
        await expiry.write(last, index_changes)

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
        before = sessions.get(decoded.integration_id)
        match apply_event(before, decoded, key):
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
                if self.stats is not None:
                    self.stats.count(
                        message.partition,
                        None if before is None else before.session,
                        applied.stored.session,
                        decoded,
                        message,
                    )
                # Last: a record whose handling raised above changed neither state nor counts
                # (counting it in the statistics, above, cannot raise).
                sessions.put(decoded.integration_id, applied.stored, stored)
                if self.expiry is not None:
                    self.expiry.advance(message.partition, decoded.occurred_at, message)
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

    def _handle_tick(self, message: Message, outbox: Outbox) -> None:
        at = decode_tick(message.value or b"")
        if at is None or self.stats is None:
            rejected = Rejected("invalid_internal_record", "Not a statistics tick")
            self.dead_letters.reject(rejected, message, outbox)
            return
        self.stats.tick(message.partition, at, message.timestamp)

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
