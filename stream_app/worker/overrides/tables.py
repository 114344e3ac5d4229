"""A table written one batch at a time: one RocksDB write batch, changelog sent as one batch.

Replaces, for the agents' writes, Faust's `table[key] = value` path (`ManagedUserDict.
__setitem__`, `Table.on_key_set`, `Collection.send_changelog`, `Topic.send_soon`, the producer
buffer task, `Topic.publish_message` and `Collection._on_changelog_sent`, which writes the
changelog offset into RocksDB once per record): per batch, the changed keys go into RocksDB in
one `WriteBatch`, and their changelog records to the producer with `send_records`, straight
after the batch's outputs. The changelog offset is persisted once per batch, as Faust does
(under exactly_once only when the transaction has committed: recovery.py).

The records of a batch go to the producer of its source partition: under exactly_once the
transactional producer of that partition (transactions.py), so outputs, changelog and the
input offsets commit together; under at_least_once the app's producer, with the changelog
records held back until the outputs are acknowledged (changelog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from typing import Any

from faust.types import TP
from rocksdict import WriteBatch

from stream_app.worker.overrides.changelog import ChangelogFence
from stream_app.worker.overrides.sends import SentBatch, send_records
from stream_app.worker.overrides.transactions import transactional_id_for
from stream_app.worker.ports import Message, Outbox, OutputRecord


class TableWriter:
    """A Faust table (RocksDB store, changelog topic) as the processors' `Table`."""

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        self.fence = ChangelogFence.of(app)
        self._changelog_topic: str | None = None

    @property
    def changelog_topic(self) -> str:
        """The table's changelog topic name."""
        if self._changelog_topic is None:
            self._changelog_topic = str(self.table.changelog_topic.get_topic_name())
        return self._changelog_topic

    def get(self, partition: int, key: str) -> bytes | None:
        """One read from the partition's RocksDB database."""
        value: bytes | None = self.table.data._db_for_partition(partition).get(key.encode())
        return value

    def lookup(self, key: str) -> bytes | None:
        """Faust's own lookup, which searches the local partitions (for the HTTP views)."""
        value: bytes | None = self.table.get(key)
        return value

    async def write_batch(
        self, source: Message, outbox: Outbox, changes: Sequence[tuple[str, bytes]]
    ) -> None:
        """Send the batch's records, then store `changes` locally and in the changelog."""
        partition = source.partition
        encoded = [(key.encode(), value) for key, value in changes]
        changelog = [
            OutputRecord(self.changelog_topic, key, value, partition, None)
            for key, value in encoded
        ]
        if encoded:
            rows = WriteBatch(raw_mode=True)
            for key, value in encoded:
                rows.put(key, value)
            # Before the changelog is sent, as Faust's table does: after a crash the local
            # tables are rebuilt from the changelog anyway (local_state.py).
            self.table.data._db_for_partition(partition).write(rows)
        app = self.app
        if app.in_transaction:
            producer, lock = await self._transactional_producer(source)
            async with lock:
                await send_records(producer, outbox.records)
                if changelog:
                    sent = await send_records(producer, changelog)
                    self._persist_offsets(sent, partition, on_commit=True)
            return
        producer = await self._producer()
        sent = await send_records(producer, outbox.records)
        self.fence.track(record_batch.delivered for record_batch in sent)
        if changelog:

            async def send_changelog() -> None:
                sent = await send_records(producer, changelog)
                self._persist_offsets(sent, partition, on_commit=False)

            self.fence.send_after_outputs(send_changelog)

    async def _producer(self) -> Any:
        """The app's aiokafka producer (at_least_once)."""
        faust_producer = await self.app.maybe_start_producer()
        return faust_producer._ensure_producer()

    async def _transactional_producer(self, source: Message) -> tuple[Any, Any]:
        """The transactional producer of the source partition, and the lock Faust sends under."""
        faust_producer: Any = self.app.producer
        tid = transactional_id_for(self.app, TP(source.topic, source.partition))
        producer = faust_producer._transaction_producers.get(tid)
        if producer is None:
            raise RuntimeError(f"no transactional producer {tid} for {source.topic}")
        lock = faust_producer._trn_locks.get(tid)
        return producer, lock if lock is not None else contextlib.nullcontext()

    def _persist_offsets(self, sent: list[SentBatch], partition: int, *, on_commit: bool) -> None:
        """Once Kafka has the changelog records, note how far the local database is."""
        store = self.table.data
        changelog_tp = TP(self.changelog_topic, partition)
        tables = self.app.tables

        def persist(future: asyncio.Future[Any], count: int) -> None:
            if future.cancelled() or future.exception() is not None:
                return
            last = future.result().offset + count - 1
            if on_commit:
                tables.persist_offset_on_commit(store, changelog_tp, last)
            elif partition in store._dbs:  # not revoked meanwhile (that would reopen it)
                store.set_persisted_offset(changelog_tp, last)

        for record_batch in sent:
            record_batch.delivered.add_done_callback(
                functools.partial(persist, count=record_batch.records)
            )
