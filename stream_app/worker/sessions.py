"""The session agent's body: decode, read the table, call the core, write the table, send."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_app.domain import (
    Applied,
    Rejected,
    RejectionSource,
    Skipped,
    apply_event,
    apply_verdict,
    build_rejection,
    decode_event,
    decode_key,
    decode_state,
    decode_verdict,
    encode_claim,
    encode_json,
    encode_state,
    profile_key,
    published_snapshot,
)
from stream_app.domain import CustomerSession as CustomerSessionT
from stream_app.settings import Settings
from stream_app.worker.metrics import Metrics

#: Headers that carry a re-keyed event's original coordinates, for its dead-letter record.
SOURCE_HEADERS = ("source-topic", "source-partition", "source-offset")
#: Header on claims naming the partition of the claiming session, where its verdict must go.
SESSION_PARTITION_HEADER = "session-partition"


@dataclass
class SessionProcessor:
    """Handles one record of the session inbox (events, re-keyed events, verdicts)."""

    settings: Settings
    table: Any
    snapshots: Any
    transitions: Any
    dead_letters: Any
    claims: Any
    rekeyed: Any
    metrics: Metrics

    async def handle(self, message: Any) -> None:
        """Process one consumed record; every outcome is a send or a counted skip."""
        started = time.perf_counter()
        self.metrics.consumed += 1
        if message.topic == self.settings.verdicts_topic:
            await self._handle_verdict(message.value)
        else:
            await self._handle_event(message)
        self.metrics.observe_latency(time.perf_counter() - started)

    async def _send(
        self,
        topic: Any,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue a record on the producer, skipping Faust's Topic/Channel layers (a fast path).

        `maybe_start_producer` is what `Topic.send` uses too: under exactly_once it is the
        transaction manager, which puts the record in the current event's transaction. The
        record is in the producer before the event is acked, so the flush that precedes every
        commit covers it, exactly as with `Topic.send` (docs/performance.md).
        """
        producer = await topic.app.maybe_start_producer()
        await producer.send(topic.get_topic_name(), key, value, None, None, headers)

    def lookup(self, integration_id: str) -> CustomerSessionT | None:
        """The latest snapshot emitted for a session this worker owns, if any."""
        stored = self.table.get(integration_id)
        return None if stored is None else published_snapshot(decode_state(stored))

    async def _handle_event(self, message: Any) -> None:
        raw: bytes = message.value if message.value is not None else b""
        decoded = decode_event(raw)
        if isinstance(decoded, Rejected):
            await self._reject(decoded, raw, message)
            return
        if message.key is None and message.topic == self.settings.input_topic:
            # The session's state lives on the partition its key hashes to; a record without
            # a key landed anywhere, so it is moved there before it is applied.
            await self._send(
                self.rekeyed,
                key=decoded.integration_id.encode(),
                value=raw,
                headers=_source_headers(message),
            )
            return
        key = decode_key(message.key)
        # The store itself: one RocksDB read (the table's own get adds a contains check).
        stored = self.table.data.get(decoded.integration_id)
        state = None if stored is None else decode_state(stored)
        match apply_event(state, decoded, key):
            case Skipped():
                self.metrics.duplicates += 1
            case Rejected() as rejected:
                await self._reject(rejected, raw, message)
            case Applied() as applied:
                self.metrics.applied += 1
                self.table[decoded.integration_id] = encode_state(applied.state)
                key_bytes = decoded.integration_id.encode()
                if applied.claim is not None:
                    self.metrics.claims_sent += 1
                    await self._send(
                        self.claims,
                        key=profile_key(
                            applied.claim.application_id, applied.claim.profile_id
                        ).encode(),
                        value=encode_claim(applied.claim),
                        headers=[(SESSION_PARTITION_HEADER, str(message.partition).encode())],
                    )
                if applied.transition is not None:
                    self.metrics.transitions[applied.transition.to] += 1
                    await self._send(
                        self.transitions, key=key_bytes, value=encode_json(applied.transition)
                    )
                await self._send_snapshot(key_bytes, applied.snapshot)

    async def _handle_verdict(self, raw: bytes) -> None:
        verdict = decode_verdict(raw)
        stored = self.table.data.get(verdict.integration_id)
        if stored is None:
            return
        state, released = apply_verdict(decode_state(stored), verdict)
        self.metrics.verdicts_applied += 1
        self.table[verdict.integration_id] = encode_state(state)
        if released is not None:
            await self._send_snapshot(verdict.integration_id.encode(), released)

    async def _send_snapshot(self, key: bytes, snapshot: CustomerSessionT | None) -> None:
        if snapshot is None:
            # Held back until the firstSession verdict arrives (contract section 5).
            self.metrics.snapshots_held += 1
            return
        self.metrics.snapshots_sent += 1
        await self._send(self.snapshots, key=key, value=encode_json(snapshot))

    async def _reject(self, rejected: Rejected, raw: bytes, message: Any) -> None:
        self.metrics.rejected[rejected.code] += 1
        source = _original_source(message)
        record = build_rejection(rejected, raw, source, rejected_at=datetime.now(UTC))
        # The dead-letter record keeps the key the event arrived with (null for re-keyed ones).
        key = message.key if source.topic == message.topic else None
        await self._send(self.dead_letters, key=key, value=encode_json(record))


def _source_headers(message: Any) -> list[tuple[str, bytes]]:
    return [
        ("source-topic", message.topic.encode()),
        ("source-partition", str(message.partition).encode()),
        ("source-offset", str(message.offset).encode()),
    ]


def _original_source(message: Any) -> RejectionSource:
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
