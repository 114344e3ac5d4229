"""Crash-safe commits: each commit covers whole events, and every record they produced.

Exactly-once sends. Faust's stock TransactionManager picks the transactional producer from the
*destination* partition of each record (``{app_id}-{topic group}-{partition}``). That is only
right when the destination is a changelog of the source partition. For our output topics it
either finds no group for the topic (they are not consumed, so Faust sends them outside any
transaction, which duplicates them after a crash) or, for a record routed to another agent's
topic (claims and verdicts), picks a producer of a partition this worker may not even own.
Kafka's exactly-once model wants the outputs of an input record in the same transaction as that
record's offset commit, so we pick the producer from the event being processed.

Whole events per commit (both guarantees). Faust commits from a timer task that runs whenever
an agent awaits, so a commit could land in the middle of an event: the records the event sent so
far would be committed with the offsets of the events before it, the rest in the next
transaction. After a crash in between, the event is consumed again: its dead-letter record or
re-keyed copy comes out twice, and a table write that made it into the first transaction makes
the event look applied (a duplicate eventId), so its remaining outputs are lost. Likewise the
offsets Faust hands to a commit are computed before the commit flushes, while agents keep
running, so records of later events can join a transaction that does not carry their offsets.
`ProcessingGuard` closes both gaps: agents handle each event (up to its ack) holding the guard,
and the consumer's commit (offsets chosen, records flushed, transaction committed) holds it too.

Which offsets. Faust commits the offsets its streams acked, and its streams also ack events
they skip without handling them: while flow control is suspended (rebalance, shutdown) or when an
event was fetched in an earlier generation (faust/streams.py, `_py_aiter`). Those acks reach the
next commit, which then marks events done that were never handled. And on a rebalance the
consumer forgets its acked offsets before the revocation's commit runs
(`Consumer.on_partitions_revoked` pops `_acked` first, then calls the app's handler, whose
`wait_empty` commit then has nothing to commit), so the open transaction keeps the records of
the events handled since the last commit without their offsets; the worker then seeks back,
handles those events again and the same transaction gets their dead letters twice. So the
commit here does not use Faust's acks at all: the guard records, per partition, the offset after
the last event it handled, and the commit sends exactly those offsets (then lets Faust trim its
own bookkeeping).

Table writes. A table assignment does not send its changelog record: Faust queues it on the
producer's buffer, which a background task drains. `ProducerBuffer.flush` is not a barrier: it
gives up after 0.1 s without progress and does not wait for the record the drain task is
sending, so a commit could carry an event's offset while its changelog record joins the next
transaction, which a crash aborts - the state change is lost while its event is marked done.
Before every commit we queue a barrier behind the pending records and wait until the drain task
reaches it: FIFO order means every earlier record has been handed to its producer by then.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiokafka.errors import ProducerFenced
from faust.streams import current_event
from faust.transport.consumer import TransactionManager
from faust.types import TP

log = logging.getLogger(__name__)

#: Exit status of a worker that stops hard because handling an event failed unexpectedly.
EXIT_EVENT_FAILED = 70
#: How long a commit waits for the producer buffer to hand over its pending records.
BUFFER_DRAIN_TIMEOUT = 120.0


class ProcessingGuard:
    """Mutual exclusion between handling one event (up to its ack) and committing."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        #: Set by the last commit of a clean stop: no event may be handled after it.
        self.closed = False
        #: Called after that last commit succeeded (see local_state.py).
        self.on_clean_stop: list[Callable[[], None]] = []
        #: Set when a commit failed: the stop that follows is not clean.
        self.failed = False
        #: Per partition, the offset after the last event handled and not committed yet.
        self.pending: dict[TP, int] = {}

    @classmethod
    def of(cls, app: Any) -> ProcessingGuard:
        """The app's guard (one per app, created on first use)."""
        guard: ProcessingGuard | None = getattr(app, "_stream_app_processing_guard", None)
        if guard is None:
            guard = cls()
            app._stream_app_processing_guard = guard
        return guard

    async def handle(self, event: Any, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (the handling of `event`) and ack the event, with no commit in between.

        Shielded: when Faust cancels the agent (on stop or rebalance) the event is still
        finished and acked before the next commit, instead of being half-sent.
        An exception means the event's outcome is unknown; committing anything after it could
        mark it done, so the worker exits at once and its successor starts again from the last
        commit, exactly as after a kill -9.
        """
        await asyncio.shield(self._handle(event, work))

    async def _handle(self, event: Any, work: Coroutine[Any, Any, None]) -> None:
        async with self.lock:
            if self.closed:
                work.close()
                return  # after the final commit: left for the next run, unacked
            try:
                await work
            except BaseException:
                log.critical("handling %r failed; exiting without committing", event.message,
                             exc_info=True)  # fmt: skip
                logging.shutdown()
                os._exit(EXIT_EVENT_FAILED)
            event.ack()
            message = event.message
            tp = message.tp
            self.pending[tp] = max(self.pending.get(tp, 0), message.offset + 1)


class _BufferBarrier:
    """Quacks like a FutureMessage queued on the producer buffer; resolves when reached."""

    def __init__(self) -> None:
        self.reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.message = self
        self.channel = self

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        if not self.reached.done():
            self.reached.set_result(None)


async def drain_producer_buffer(app: Any, timeout: float = BUFFER_DRAIN_TIMEOUT) -> None:
    """Wait until every record queued on the producer buffer so far is handed to a producer."""
    buffer = app.producer.buffer
    if app.conf.producer_threaded:
        await buffer.flush()  # not used by this project; Faust's best effort
        return
    barrier = _BufferBarrier()
    buffer.pending.put_nowait(barrier)
    await asyncio.wait_for(asyncio.shield(barrier.reached), timeout)


class SourcePartitionTransactionManager(TransactionManager):
    """Route each send to the transactional producer of the input partition being processed.

    Also replaces the consumer's commit (under either guarantee: Faust creates this object for
    every consumer) by `commit_handled`.
    """

    def __init__(self, transport: Any, *, consumer: Any, producer: Any, **kwargs: Any) -> None:
        super().__init__(transport, consumer=consumer, producer=producer, **kwargs)
        self.guard = ProcessingGuard.of(self.app)
        # Faust's timer, its wait_empty and its commit_every all call consumer.commit().
        consumer.commit = self.commit_handled

    async def commit_handled(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Commit the offsets of the events handled so far, with everything they produced.

        Replaces `Consumer.commit` (see the module docstring). `topics` is ignored: every
        assigned partition is committed. With start_new_transaction=False while the app stops,
        this is the last commit: afterwards nothing is handled or committed any more, and if all
        went well the local tables are declared clean (local_state.py).
        """
        guard, consumer, app = self.guard, self.consumer, self.app
        async with guard.lock:
            if guard.closed:
                return False
            final = start_new_transaction is False and (app.should_stop or consumer.should_stop)
            try:
                committed = await self._commit_pending(start_new_transaction)
            except BaseException:
                guard.failed = True
                raise
            if final:
                guard.closed = True
                if not (guard.failed or consumer.crashed or app.crashed):
                    for callback in guard.on_clean_stop:
                        callback()
            return committed

    async def _commit_pending(self, start_new_transaction: bool) -> bool:
        guard, app = self.guard, self.app
        consumer: Any = self.consumer  # faust's Consumer: its private bookkeeping is used
        await drain_producer_buffer(app)
        assignment = consumer.assignment()
        for tp in [tp for tp in guard.pending if tp not in assignment]:
            # Revoked since: its events were committed at the revocation, or will be handled
            # again by the new owner.
            del guard.pending[tp]
        offsets = dict(guard.pending)
        if not offsets:
            return False
        if app.in_transaction:
            committed = await self.commit(offsets, start_new_transaction)
        else:
            await app.producer.flush()
            committed = bool(await consumer._commit(offsets))
        if not committed:
            guard.failed = True
            return False
        for tp, offset in offsets.items():
            if guard.pending.get(tp) == offset:
                del guard.pending[tp]
        consumer._committed_offset.update(offsets)
        app.tables.on_commit(offsets)
        # Let Faust drop the acks (and offset gaps) it keeps for these partitions.
        consumer._filter_committable_offsets(list(offsets))
        app.monitor.on_tp_commit(offsets)
        return True

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        """Keep exactly one live producer per actively assigned partition.

        Faust stops the producers of the partitions it computes as revoked and (re)begins the
        ones of all assigned partitions, swallowing every error of `begin_transaction`. A
        producer of a partition that went to another worker and came back was fenced by that
        worker meanwhile; Faust keeps using it and every send fails. Here every producer whose
        partition is not actively assigned now is stopped, and kept ones that are not usable
        (fenced, or in an error state) are replaced by new ones.
        """
        producer: Any = self.producer
        wanted = self._tps_to_transactional_ids(assigned)
        existing = set(producer._transaction_producers)
        log.info(
            "rebalance: %d assigned, %d revoked; producers kept %d, stopped %d, new %d",
            len(assigned), len(revoked), len(existing & wanted), len(existing - wanted),
            len(wanted - existing),
        )  # fmt: skip
        for tid in sorted(existing - wanted):
            await producer.stop_transaction(tid)
        for tid in sorted(wanted):
            current = producer._transaction_producers.get(tid)
            state = _state(current)
            if state == "IN_TRANSACTION":
                continue  # nothing was committed at the revocation: the transaction goes on
            if current is not None and state != "READY":
                log.info("replacing transactional producer %s (%s)", tid, state)
                await producer.stop_transaction(tid)
            # Creates (and initializes, fencing any other holder of the id) when missing.
            await producer.begin_transaction(tid)

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
        """Commit every partition's transaction with its offsets, all at once (under the guard).

        Faust commits the transactions one after the other (`Producer.commit_transactions`),
        each a few round trips, while no event may be handled; they belong to independent
        producers, so they run concurrently here.
        """
        started = time.monotonic()
        group_id = self.app.conf.id
        by_transactional_id: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            group = self.app.assignor.group_for_topic(tp.topic)
            by_transactional_id[f"{group_id}-{group}-{tp.partition}"][tp] = offset
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
        elapsed = time.monotonic() - started
        if elapsed > 1.0:
            log.warning("committing %d transactions took %.2f s", len(by_transactional_id), elapsed)
        return True

    async def _commit_transaction(
        self, tid: str, offsets: dict[TP, int], group_id: str, start_new_transaction: bool
    ) -> None:
        producer: Any = self.producer  # faust's aiokafka Producer: per-id producers and locks
        async with producer._trn_locks[tid]:
            transaction_producer = producer._transaction_producers.get(tid)
            if transaction_producer is None:
                log.warning("commit for unknown transaction %s", tid)
                return
            await transaction_producer.send_offsets_to_transaction(offsets, group_id)
            await transaction_producer.commit_transaction()
            if start_new_transaction:
                await transaction_producer.begin_transaction()


def _state(transaction_producer: Any) -> str | None:
    """The state of an aiokafka transactional producer's transaction (None: no producer)."""
    if transaction_producer is None:
        return None
    state = getattr(transaction_producer._txn_manager, "state", None)
    return None if state is None else str(state.name)
