"""How a batch's records and table changes reach Kafka, one writer per guarantee.

Replaces, for the agents' writes, Faust's `table[key] = value` path (`ManagedUserDict.
__setitem__`, `Table.on_key_set`, `Collection.send_changelog`, `Topic.send_soon`, the producer
buffer task, `Topic.publish_message` and `Collection._on_changelog_sent`, which writes the
changelog offset into RocksDB once per record), and Faust's per-record `Producer.send`: per
batch, the changed keys go into RocksDB as one `WriteBatch` (tables.py), and the batch's outputs
and then its changelog records to the producer with `send_records` (sends.py).

The composition root (app.py) picks one writer for the app's guarantee:

- `ExactlyOnceWriter`: everything goes to the transactional producer of the batch's source
  partition, so outputs, changelog records and (at the commit) the input offsets are committed
  together; the commit ends every partition's transaction at once.
- `AtLeastOnceWriter`: everything goes to the app's producer; the changelog records wait until
  the outputs before them are acknowledged (changelog.py); the commit waits for every send and
  then commits the consumer offsets.

Either way the changelog offsets reached are noted in `ChangelogOffsets`, which the commit
persists (checkpoint.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka.errors import ProducerFenced
from faust.types import TP

from stream_app.worker.metrics import Metrics
from stream_app.worker.overrides.changelog import ChangelogFence
from stream_app.worker.overrides.sends import SentBatch, send_records
from stream_app.worker.overrides.tables import LocalTable
from stream_app.worker.overrides.transactions import transactional_id_for
from stream_app.worker.ports import BatchWriter, Message, Outbox

log = logging.getLogger(__name__)

#: A commit of all transactions slower than this is logged.
SLOW_COMMIT_SECONDS = 1.0


class ChangelogOffsets:
    """How far each local table partition's changelog was written; persisted at commits.

    RocksDB keeps, per table partition, the changelog offset its data reflects; a restore reads
    the changelog from there. Offsets are noted when Kafka acknowledges the changelog records
    and written into RocksDB by the commit (Checkpoint.commit, step 5): under exactly_once only
    for partitions whose transaction committed, since an aborted transaction's records are
    never read back.
    """

    def __init__(self) -> None:
        self._noted: dict[TP, tuple[Any, int]] = {}

    def note(self, store: Any, changelog_tp: TP, offset: int) -> None:
        """The changelog of `changelog_tp` holds this table partition's data up to `offset`."""
        noted = self._noted.get(changelog_tp)
        if noted is None or noted[1] < offset:
            self._noted[changelog_tp] = (store, offset)

    def persist(self, partitions: set[int] | None = None) -> None:
        """Write the noted offsets of these partitions (None: all) into their databases."""
        for changelog_tp in list(self._noted):
            if partitions is not None and changelog_tp.partition not in partitions:
                continue
            store, offset = self._noted.pop(changelog_tp)
            if changelog_tp.partition in store._dbs:  # noqa: SLF001, private: not revoked meanwhile
                store.set_persisted_offset(changelog_tp, offset)

    def pending(self) -> dict[TP, int]:
        """The offsets noted and not persisted yet (for tests and logs)."""
        return {tp: offset for tp, (_, offset) in self._noted.items()}


class GuaranteeWriter(Protocol):
    """What the commit needs of the guarantee's writer (Checkpoint.commit, steps 2 and 4)."""

    changelog: ChangelogOffsets
    #: (started, ended) of the last batch's write, time.time(): for the stage metrics.
    last_write: tuple[float, float]
    #: Input records of the batch being handled (set by the checkpoint): stage weights.
    batch_records: int

    def for_table(self, table: LocalTable) -> BatchWriter:
        """The port the processors write one table's batches through."""

    async def flush(self) -> None:
        """Wait until everything written so far has been handed over and acknowledged."""

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool) -> bool:
        """Commit `offsets` (each the next offset to read) with what was written for them."""

    def committed_partitions(self, offsets: Mapping[TP, int]) -> set[int] | None:
        """The table partitions whose changelog offsets a commit of `offsets` makes durable."""


class _TableBatches:
    """One table's `BatchWriter`: the guarantee's writer, bound to the table."""

    __slots__ = ("_table", "_writer")

    def __init__(self, writer: _Writer, table: LocalTable) -> None:
        self._writer = writer
        self._table = table

    async def write(
        self, source: Message, outbox: Outbox, changes: Sequence[tuple[str, bytes | None]]
    ) -> None:
        await self._writer.write(source, outbox, self._table, changes)


class _Writer:
    def __init__(self, app: Any, changelog: ChangelogOffsets, metrics: Metrics) -> None:
        self.app = app
        self.changelog = changelog
        self.metrics = metrics
        self.last_write = (0.0, 0.0)
        # The source of the last write: a batch writes once per table (sessions, then the
        # expiry index), and its write stage spans them all.
        self._last_source: Message | None = None
        self.batch_records = 1

    def for_table(self, table: LocalTable) -> BatchWriter:
        return _TableBatches(self, table)

    def _wrote(self, source: Message, started: float, ended: float) -> bool:
        """Note a write's time; whether it was the batch's first (not one more of its tables)."""
        first = source is not self._last_source
        self._last_source = source
        self.last_write = (started if first else self.last_write[0], ended)
        return first

    async def write(
        self,
        source: Message,
        outbox: Outbox,
        table: LocalTable,
        changes: Sequence[tuple[str, bytes | None]],
    ) -> None:
        raise NotImplementedError

    def _note_when_delivered(
        self, sent: list[SentBatch], table: LocalTable, partition: int
    ) -> None:
        changelog, store, changelog_tp = self.changelog, table.store, table.changelog_tp(partition)

        def note(future: asyncio.Future[Any], count: int) -> None:
            if not (future.cancelled() or future.exception() is not None):
                changelog.note(store, changelog_tp, future.result().offset + count - 1)

        for record_batch in sent:
            record_batch.delivered.add_done_callback(
                functools.partial(note, count=record_batch.records)
            )


class ExactlyOnceWriter(_Writer):
    """exactly_once: a batch's records join the transaction of its source partition.

    They are delivered when the commit ends (the deliver stage is measured there).
    """

    def __init__(self, app: Any, changelog: ChangelogOffsets, metrics: Metrics) -> None:
        super().__init__(app, changelog, metrics)
        #: (write ended, input records) of the batches written since the last commit.
        self._written: list[tuple[float, int]] = []

    async def write(
        self,
        source: Message,
        outbox: Outbox,
        table: LocalTable,
        changes: Sequence[tuple[str, bytes | None]],
    ) -> None:
        """Store the changes, then send the outputs and the changelog records in the transaction.

        Stored before they are sent, as Faust's table does: after a crash the local tables are
        rebuilt from the changelog anyway (local_state.py).
        """
        started = time.time()
        partition = source.partition
        encoded = table.store_batch(partition, changes)
        producer, lock = self._transactional_producer(source)
        async with lock:
            await send_records(producer, outbox.records)
            if encoded:
                sent = await send_records(producer, table.changelog_records(partition, encoded))
                self._note_when_delivered(sent, table, partition)
        ended = time.time()
        if self._wrote(source, started, ended):
            self._written.append((ended, self.batch_records))
        else:  # the batch is delivered with its last table's records
            self._written[-1] = (ended, self._written[-1][1])

    async def flush(self) -> None:
        """Nothing: committing a transaction flushes its producer."""

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool) -> bool:
        """Commit every partition's transaction with its offsets, all at once.

        Faust commits the transactions one after the other (`Producer.commit_transactions`),
        each a few round trips; they belong to independent producers, so they run concurrently
        here. A fenced producer means another worker owns the partition now: the app crashes
        (Faust's own reaction), nothing is committed here.
        """
        started = time.monotonic()
        group_id = self.app.conf.id
        by_transactional_id: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            by_transactional_id[transactional_id_for(self.app, tp)][tp] = offset
        try:
            await asyncio.gather(
                *(
                    self._commit_transaction(tid, tid_offsets, group_id, start_new_transaction)
                    for tid, tid_offsets in by_transactional_id.items()
                )
            )
        except ProducerFenced as fenced:
            log.warning("producer fenced: %r", fenced)
            await self.app.crash(fenced)
            return False
        committed_at = time.time()
        for write_ended, records in self._written:
            self.metrics.observe_stage("deliver", committed_at - write_ended, records)
        self._written.clear()
        elapsed = time.monotonic() - started
        if elapsed > SLOW_COMMIT_SECONDS:
            log.warning("committing %d transactions took %.2f s", len(by_transactional_id), elapsed)
        return True

    def committed_partitions(self, offsets: Mapping[TP, int]) -> set[int] | None:
        """Only the committed transactions' partitions: an aborted one's records never count."""
        return {tp.partition for tp in offsets}

    async def _commit_transaction(
        self, tid: str, offsets: dict[TP, int], group_id: str, start_new_transaction: bool
    ) -> None:
        producer: Any = self.app.producer  # faust's Producer: per-id producers and locks
        async with producer._trn_locks[tid]:  # noqa: SLF001, private: Faust's lock per transactional id
            transaction_producer = producer._transaction_producers.get(tid)  # noqa: SLF001, private
            if transaction_producer is None:
                log.warning("commit for unknown transaction %s", tid)
                return
            await transaction_producer.send_offsets_to_transaction(offsets, group_id)
            await transaction_producer.commit_transaction()
            if start_new_transaction:
                await transaction_producer.begin_transaction()

    def _transactional_producer(self, source: Message) -> tuple[Any, Any]:
        """The transactional producer of the source partition, and the lock Faust sends under."""
        faust_producer: Any = self.app.producer
        tid = transactional_id_for(self.app, TP(source.topic, source.partition))
        producer = faust_producer._transaction_producers.get(tid)  # noqa: SLF001, private
        if producer is None:
            raise RuntimeError(f"no transactional producer {tid} for {source.topic}")
        lock = faust_producer._trn_locks.get(tid)  # noqa: SLF001, private
        return producer, lock if lock is not None else contextlib.nullcontext()


class AtLeastOnceWriter(_Writer):
    """at_least_once: the app's producer; changelog records wait for the outputs before them."""

    def __init__(self, app: Any, changelog: ChangelogOffsets, metrics: Metrics) -> None:
        super().__init__(app, changelog, metrics)
        self.fence = ChangelogFence()
        self._aiokafka_producer: Any = None

    async def write(
        self,
        source: Message,
        outbox: Outbox,
        table: LocalTable,
        changes: Sequence[tuple[str, bytes | None]],
    ) -> None:
        """Store the changes, send the outputs, and queue the changelog records behind them."""
        started = time.time()
        partition = source.partition
        encoded = table.store_batch(partition, changes)
        producer = await self._producer()
        sent = await send_records(producer, outbox.records)
        written = time.time()
        self._wrote(source, started, written)
        self._measure_delivery([record_batch.delivered for record_batch in sent], written)
        self.fence.track(record_batch.delivered for record_batch in sent)
        if encoded:
            changelog = table.changelog_records(partition, encoded)

            async def send_changelog() -> None:
                sent = await send_records(producer, changelog)
                self._note_when_delivered(sent, table, partition)

            self.fence.send_after_outputs(send_changelog)

    def _measure_delivery(
        self, acknowledgements: list[asyncio.Future[Any]], written: float
    ) -> None:
        """Observe the deliver stage once every output record batch is acknowledged."""
        if not acknowledgements:
            return
        left, records, stages = [len(acknowledgements)], self.batch_records, self.metrics

        def acknowledged(_: asyncio.Future[Any]) -> None:
            left[0] -= 1
            if left[0] == 0:
                stages.observe_stage("deliver", time.time() - written, records)

        for acknowledgement in acknowledgements:
            acknowledgement.add_done_callback(acknowledged)

    async def flush(self) -> None:
        """The changelog records held back go out, then every send is acknowledged."""
        await self.fence.drain()
        producer = await self._producer()
        await producer.flush()

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool) -> bool:
        """Commit the consumer offsets (everything they cover is acknowledged: see flush)."""
        consumer: Any = self.app.consumer
        return bool(await consumer._commit(offsets))  # noqa: SLF001, private: Faust's offset commit

    def committed_partitions(self, offsets: Mapping[TP, int]) -> set[int] | None:
        """Every partition: what was acknowledged is in Kafka, committed or not."""
        return None

    async def _producer(self) -> Any:
        """The app's aiokafka producer."""
        if self._aiokafka_producer is None:
            faust_producer = await self.app.maybe_start_producer()
            producer = faust_producer._ensure_producer()  # noqa: SLF001, private
            self._aiokafka_producer = producer
        return self._aiokafka_producer
