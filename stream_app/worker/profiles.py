"""The profile agent's body: first claim of an (applicationId, profileId) wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from stream_app.domain import Rejected, decide_claim, decode_claim, encode_verdict, profile_key
from stream_app.settings import Settings
from stream_app.worker.dead_letters import DeadLetters
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, BatchWriter, Headers, Message, Outbox, Table
from stream_app.worker.sessions import SESSION_PARTITION_HEADER


@dataclass
class ProfileProcessor:
    """Decides claims in the profile table and routes each verdict to the claiming session."""

    settings: Settings
    table: Table
    writer: BatchWriter
    metrics: Metrics
    #: Partitions of the verdicts topic (the same as every topic of the worker's).
    partitions: int
    dead_letters: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self.dead_letters = DeadLetters(self.settings, self.metrics)

    async def handle(self, message: Message) -> None:
        """Record the first claimer of a profile and answer the claimant."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Decide consecutive claims of one partition in order, then send and store.

        The verdicts leave together, before the owners are stored (BatchWriter.write).
        """
        if not messages:
            return
        self.metrics.observe_batch("profiles", len(messages))
        last = messages[-1]
        owners = BatchState(self.table, last.partition, bytes.decode, str.encode)
        outbox = Outbox()
        for message in messages:
            sent_before = len(outbox.records)
            try:
                self._decide(message, owners, outbox)
            except Exception as exc:
                self.dead_letters.failed(exc, message, outbox, sent_before)
        await self.writer.write(last, outbox, owners.changes())

    def _decide(self, message: Message, owners: BatchState[str], outbox: Outbox) -> None:
        try:
            claim = decode_claim(message.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._invalid(f"Not a profile claim: {exc}", message, outbox)
            return
        partition = _session_partition(message.headers, self.partitions)
        if partition == _INVALID:
            self._invalid(
                f"No valid {SESSION_PARTITION_HEADER} header (0 to {self.partitions - 1})",
                message,
                outbox,
            )
            return
        key = profile_key(claim.application_id, claim.profile_id)
        owner, verdict = decide_claim(owners.get(key), claim)
        outbox.send(
            self.settings.verdicts_topic,
            claim.integration_id.encode(),
            encode_verdict(verdict),
            # The verdict goes to the partition that holds the session, whatever
            # partitioner its producer used.
            partition,
        )
        owners.put(key, owner)

    def _invalid(self, why: str, message: Message, outbox: Outbox) -> None:
        self.dead_letters.reject(Rejected("invalid_internal_record", why), message, outbox)


#: A session-partition header that is present but not one this worker would write.
_INVALID: Final = -1


def _session_partition(headers: Headers | None, partitions: int) -> int | None:
    """The partition named by the claim's header; None without one, _INVALID when malformed."""
    values = [value for name, value in headers or () if name == SESSION_PARTITION_HEADER]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], bytes):
        return _INVALID
    raw = values[0]
    if not (raw.isdigit() and raw.isascii() and len(raw) <= 9):
        return _INVALID
    partition = int(raw)
    return partition if partition < partitions else _INVALID
