"""The session agent's body: decode, read the table, call the core, write the table, send."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from stream_app.domain import (
    Applied,
    Rejected,
    RejectionSource,
    Skipped,
    StoredSession,
    apply_event,
    apply_verdict,
    build_rejection,
    decode_event,
    decode_key,
    decode_stored,
    decode_verdict,
    encode_claim,
    encode_json,
    encode_stored,
    profile_key,
    published_snapshot,
)
from stream_app.domain import CustomerSession as CustomerSessionT
from stream_app.settings import ProcessingGuarantee, Settings
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, Headers, Message, Outbox, Table

log = logging.getLogger(__name__)

#: Headers that carry a re-keyed event's original coordinates, for its dead-letter record.
SOURCE_HEADERS = ("source-topic", "source-partition", "source-offset")
#: Header on claims naming the partition of the claiming session, where its verdict must go.
SESSION_PARTITION_HEADER = "session-partition"


class MissingSessionState(RuntimeError):
    """The local table lacks a session that committed records say exists."""


@dataclass
class SessionProcessor:
    """Handles the records of the session inbox (events, re-keyed events, verdicts)."""

    settings: Settings
    table: Table
    metrics: Metrics

    async def handle(self, message: Message) -> None:
        """Process one consumed record; every outcome is a send or a counted skip."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Process consecutive records of one partition in order, then send and store.

        Each session is read once and written once per batch (BatchState); the records the
        batch sends are collected in an outbox and leave together, before the table's
        changes (Table.write_batch).
        """
        if not messages:
            return
        self.metrics.observe_batch("sessions", len(messages))
        last = messages[-1]
        sessions = BatchState(self.table, last.partition, decode_stored, encode_stored)
        outbox = Outbox()
        verdicts_topic, input_topic = self.settings.verdicts_topic, self.settings.input_topic
        for message in messages:
            started = time.perf_counter()
            topic = message.topic
            if topic == verdicts_topic:
                self.metrics.verdicts_consumed += 1
                self._handle_verdict(message, sessions, outbox)
            else:
                if topic == input_topic:
                    self.metrics.events_consumed += 1
                self._handle_event(message, sessions, outbox)
                self.metrics.observe_end_to_end(time.time() - message.timestamp)
            self.metrics.observe_latency(time.perf_counter() - started)
        await self.table.write_batch(last, outbox, sessions.changes())

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
            self._reject(decoded, raw, message, outbox)
            return
        if message.key is None and message.topic == self.settings.input_topic:
            # The session's state lives on the partition its key hashes to; a record without
            # a key landed anywhere, so it is moved there before it is applied.
            outbox.send(
                self.settings.rekeyed_topic,
                key=decoded.integration_id.encode(),
                value=raw,
                headers=_source_headers(message),
            )
            return
        key = decode_key(message.key)
        match apply_event(sessions.get(decoded.integration_id), decoded, key):
            case Skipped():
                self.metrics.duplicates += 1
            case Rejected() as rejected:
                self._reject(rejected, raw, message, outbox)
            case Applied() as applied:
                self.metrics.applied += 1
                key_bytes = decoded.integration_id.encode()
                if applied.claim is not None:
                    self.metrics.claims_sent += 1
                    outbox.send(
                        self.settings.claims_topic,
                        key=profile_key(
                            applied.claim.application_id, applied.claim.profile_id
                        ).encode(),
                        value=encode_claim(applied.claim),
                        headers=[(SESSION_PARTITION_HEADER, str(message.partition).encode())],
                    )
                if applied.transition is not None:
                    self.metrics.transitions[applied.transition.to] += 1
                    outbox.send(
                        self.settings.transitions_topic,
                        key=key_bytes,
                        value=encode_json(applied.transition),
                    )
                self._send_snapshot(key_bytes, applied.snapshot, outbox)
                sessions.put(decoded.integration_id, applied.stored)

    def _handle_verdict(
        self, message: Message, sessions: BatchState[StoredSession], outbox: Outbox
    ) -> None:
        verdict = decode_verdict(message.value or b"")
        stored = sessions.get(verdict.integration_id)
        if stored is None:
            self._verdict_without_session(verdict.integration_id, message)
            return
        state, released = apply_verdict(stored, verdict)
        self.metrics.verdicts_applied += 1
        if released is not None:
            self._send_snapshot(verdict.integration_id.encode(), released, outbox)
        sessions.put(verdict.integration_id, state)

    def _verdict_without_session(self, integration_id: str, message: Message) -> None:
        """A verdict whose session is not in the local table: never dropped unseen.

        A claim leaves only together with the state of the session that made it, so under
        exactly_once the session is always there: its absence means the local table lost
        committed state. Raising stops the worker without committing (Checkpoint.handle); its
        successor rebuilds the table from the changelog and reads this verdict again.
        Under at_least_once the verdict can legitimately come first: the claiming event's
        state change was lost with its worker, its offset was not committed, and when it is
        applied again it sends a new claim, which gets the same answer. It is counted.
        """
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        if self.settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE:
            raise MissingSessionState(
                f"verdict {where} for session {integration_id!r}, which is not in the local "
                "table: the table is behind its changelog"
            )
        self.metrics.verdicts_without_session += 1
        log.warning(
            "verdict %s for session %r before the session's state; its claim will be sent "
            "again when the claiming event is applied again",
            where,
            integration_id,
        )

    def _send_snapshot(self, key: bytes, snapshot: CustomerSessionT | None, outbox: Outbox) -> None:
        if snapshot is None:
            # Held back until the firstSession verdict arrives (contract section 5).
            self.metrics.snapshots_held += 1
            return
        self.metrics.snapshots_sent += 1
        outbox.send(self.settings.output_topic, key=key, value=encode_json(snapshot))

    def _reject(self, rejected: Rejected, raw: bytes, message: Message, outbox: Outbox) -> None:
        self.metrics.rejected[rejected.code] += 1
        source = _original_source(message)
        record = build_rejection(rejected, raw, source, rejected_at=datetime.now(UTC))
        # The dead-letter record keeps the key the event arrived with (null for re-keyed ones).
        key = message.key if source.topic == message.topic else None
        outbox.send(self.settings.dlq_topic, key=key, value=encode_json(record))
        # Debug only: a stream of bad records must not flood the log at the usual level.
        log.debug(
            "dead letter %s: %s (source %s:%d@%d, key %r)",
            rejected.code,
            rejected.message,
            source.topic,
            source.partition,
            source.offset,
            source.key,
        )


def _source_headers(message: Message) -> Headers:
    return [
        ("source-topic", message.topic.encode()),
        ("source-partition", str(message.partition).encode()),
        ("source-offset", str(message.offset).encode()),
    ]


def _original_source(message: Message) -> RejectionSource:
    headers = dict(message.headers or ())
    if all(name in headers for name in SOURCE_HEADERS):
        # A re-keyed event: report where the user's producer put it, and its null key.
        return RejectionSource(
            topic=headers["source-topic"].decode(),
            partition=int(headers["source-partition"]),
            offset=int(headers["source-offset"]),
            key=None,
        )
    return RejectionSource(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=decode_key(message.key),
    )
