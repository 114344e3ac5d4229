"""Exactly-once sends: every record an agent sends joins the transaction of the event it handles.

Faust's stock TransactionManager picks the transactional producer from the *destination*
partition of each record (``{app_id}-{topic group}-{partition}``). That is only right when the
destination is a changelog of the source partition. For our output topics it either finds no
group for the topic (they are not consumed, so Faust sends them outside any transaction, which
duplicates them after a crash) or, for a record routed to another agent's topic (claims and
verdicts), picks a producer of a partition this worker may not even own. Kafka's exactly-once
model wants the outputs of an input record in the same transaction as that record's offset
commit, so we pick the producer from the event being processed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from faust.streams import current_event
from faust.transport.consumer import TransactionManager
from faust.types import TP


class SourcePartitionTransactionManager(TransactionManager):
    """Route each send to the transactional producer of the input partition being processed."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[Any]:
        """Send in the current event's transaction; changelog flushes keep Faust's routing."""
        event = current_event()
        if event is None:
            # Background flushes (table changelogs) carry the source partition explicitly, and
            # a changelog shares its source's topic group, so Faust's own routing is right.
            return await super().send(topic, key, value, partition, timestamp, headers)
        source = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        source_tid = f"{self.app.conf.id}-{group}-{source.partition}"
        return await self.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=source_tid
        )

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Flush queued sends (table changelogs among them) into the transaction, then commit."""
        # Faust queues changelog writes in a buffer that its exactly-once commit does not drain:
        # a write queued before the commit would land in the next transaction, and a crash in
        # between would commit the offset while losing the state change.
        await self.app.producer.flush()
        return await super().commit(offsets, start_new_transaction)
