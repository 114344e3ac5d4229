"""The profile agent's body: first claim of an (applicationId, profileId) wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_app.domain import decide_claim, decode_claim, encode_verdict, profile_key
from stream_app.settings import Settings
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, Message, Outbox, Table
from stream_app.worker.sessions import SESSION_PARTITION_HEADER


@dataclass
class ProfileProcessor:
    """Decides claims in the profile table and routes each verdict to the claiming session."""

    settings: Settings
    table: Table
    metrics: Metrics

    async def handle(self, message: Message) -> None:
        """Record the first claimer of a profile and answer the claimant."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Decide consecutive claims of one partition in order, then send and store.

        The verdicts leave together, before the owners are stored (Table.write_batch).
        """
        if not messages:
            return
        self.metrics.observe_batch("profiles", len(messages))
        last = messages[-1]
        owners = BatchState(self.table, last.partition, bytes.decode, str.encode)
        outbox = Outbox()
        for message in messages:
            claim = decode_claim(message.value or b"")
            key = profile_key(claim.application_id, claim.profile_id)
            owner, verdict = decide_claim(owners.get(key), claim)
            partition = dict(message.headers or ()).get(SESSION_PARTITION_HEADER)
            outbox.send(
                self.settings.verdicts_topic,
                claim.integration_id.encode(),
                encode_verdict(verdict),
                # The verdict goes to the partition that holds the session, whatever
                # partitioner its producer used.
                None if partition is None else int(partition),
            )
            owners.put(key, owner)
        await self.table.write_batch(last, outbox, owners.changes())
