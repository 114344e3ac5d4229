"""The profile agent's body: first claim of an (applicationId, profileId) wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_app.domain import decide_claim, decode_claim, encode_verdict, profile_key
from stream_app.settings import Settings
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, Message, Producers, Table
from stream_app.worker.sessions import SESSION_PARTITION_HEADER


@dataclass
class ProfileProcessor:
    """Decides claims in the profile table and routes each verdict to the claiming session."""

    settings: Settings
    table: Table
    producers: Producers
    metrics: Metrics

    async def handle(self, message: Message) -> None:
        """Record the first claimer of a profile and answer the claimant."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Decide consecutive claims of one partition in order, then store the owners.

        The verdicts are all sent before the writes, so under at_least_once the changelog
        records wait for them (changelog.py).
        """
        self.metrics.observe_batch("profiles", len(messages))
        owners = BatchState(self.table, bytes.decode, str.encode)
        producer = await self.producers.maybe_start_producer()
        for message in messages:
            claim = decode_claim(message.value or b"")
            key = profile_key(claim.application_id, claim.profile_id)
            owner, verdict = decide_claim(owners.get(key), claim)
            partition = dict(message.headers or ()).get(SESSION_PARTITION_HEADER)
            await producer.send(
                self.settings.verdicts_topic,
                claim.integration_id.encode(),
                encode_verdict(verdict),
                # The verdict goes to the partition that holds the session, whatever
                # partitioner its producer used.
                None if partition is None else int(partition),
                None,
                None,
            )
            owners.put(key, owner)
        owners.write()
