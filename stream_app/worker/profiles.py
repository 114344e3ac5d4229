"""The profile agent's body: first claim of an (applicationId, profileId) wins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream_app.domain import decide_claim, decode_claim, encode_verdict, profile_key
from stream_app.worker.metrics import Metrics
from stream_app.worker.sessions import SESSION_PARTITION_HEADER


@dataclass
class ProfileProcessor:
    """Decides claims in the profile table and routes each verdict to the claiming session."""

    table: Any
    verdicts: Any
    metrics: Metrics

    async def handle(self, message: Any) -> None:
        """Record the first claimer of a profile and answer the claimant."""
        claim = decode_claim(message.value)
        key = profile_key(claim.application_id, claim.profile_id)
        stored: bytes | None = self.table.get(key)
        owner, verdict = decide_claim(None if stored is None else stored.decode(), claim)
        self.table[key] = owner.encode()
        headers = dict(message.headers or ())
        partition = headers.get(SESSION_PARTITION_HEADER)
        await self.verdicts.send(
            key=claim.integration_id.encode(),
            value=encode_verdict(verdict),
            # The verdict goes to the partition that holds the session, whatever partitioner
            # its producer used.
            partition=None if partition is None else int(partition),
        )
