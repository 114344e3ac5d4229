"""Crash-safe commits: each commit covers whole events, and every record they produced.

- `SourcePartitionTransactionManager` sends every record of an event through the transactional
  producer of the event's source partition, and commits exactly the offsets the checkpoint
  recorded, after draining Faust's producer buffer;
- `Checkpoint` holds the offsets of the events handled since the last commit, and the lock that
  agents hold while handling one event and the commit holds while it runs.

Why Faust's own machinery is replaced here: docs/design.md, "Where the worker replaces Faust's
machinery" (items 1 and 3 to 6).
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

from stream_app.worker.overrides import one_per_app
from stream_app.worker.overrides.changelog import ChangelogFence

log = logging.getLogger(__name__)

#: Exit status of a worker that stops hard because handling an event failed unexpectedly.
EXIT_EVENT_FAILED = 70
#: How long a commit waits for the producer buffer to hand over its pending records.
BUFFER_DRAIN_TIMEOUT = 120.0


def transactional_id_for(app: Any, source: TP) -> str:
    """The transactional id of the producer that takes what a source partition's events send.

    Faust's own naming (`TransactionManager._tps_to_transactional_ids`): app id, topic group
    of the source topic, partition.
    """
    group = app.assignor.group_for_topic(source.topic)
    return f"{app.conf.id}-{group}-{source.partition}"


class Checkpoint:
    """The offsets of handled events, and the lock that keeps commits between whole events."""

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
    def of(cls, app: Any) -> Checkpoint:
        """The app's checkpoint (one per app, created on first use)."""
        return one_per_app(app, cls)

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
        self.checkpoint = Checkpoint.of(self.app)
        # Faust's timer, its wait_empty and its commit_every all call consumer.commit().
        consumer.commit = self.commit_handled

    async def commit_handled(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Commit the offsets of the events handled so far, with everything they produced.

        Replaces `Consumer.commit` (see the module docstring). `topics` is ignored: every
        assigned partition is committed. With start_new_transaction=False while the app stops,
        this is the last commit: afterwards nothing is handled or committed any more, and if all
        went well the local tables are declared clean (local_state.py).
        """
        checkpoint, consumer, app = self.checkpoint, self.consumer, self.app
        async with checkpoint.lock:
            if checkpoint.closed:
                return False
            final = start_new_transaction is False and (app.should_stop or consumer.should_stop)
            try:
                committed = await self._commit_pending(start_new_transaction)
            except BaseException:
                checkpoint.failed = True
                raise
            if final:
                checkpoint.closed = True
                if not (checkpoint.failed or consumer.crashed or app.crashed):
                    for callback in checkpoint.on_clean_stop:
                        callback()
            return committed

    async def _commit_pending(self, start_new_transaction: bool) -> bool:
        checkpoint, app = self.checkpoint, self.app
        consumer: Any = self.consumer  # faust's Consumer: its private bookkeeping is used
        if not app.in_transaction:
            # Changelog records held back behind their outputs (changelog.py) go first.
            await ChangelogFence.of(app).drain()
        await drain_producer_buffer(app)
        assignment = consumer.assignment()
        for tp in [tp for tp in checkpoint.pending if tp not in assignment]:
            # Revoked since: its events were committed at the revocation, or will be handled
            # again by the new owner.
            del checkpoint.pending[tp]
        offsets = dict(checkpoint.pending)
        if not offsets:
            return False
        if app.in_transaction:
            committed = await self.commit(offsets, start_new_transaction)
        else:
            await app.producer.flush()
            committed = bool(await consumer._commit(offsets))
        if not committed:
            checkpoint.failed = True
            return False
        for tp, offset in offsets.items():
            if checkpoint.pending.get(tp) == offset:
                del checkpoint.pending[tp]
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
        source_tid = transactional_id_for(self.app, event.message.tp)
        return await self.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=source_tid
        )

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Commit every partition's transaction with its offsets, all at once (checkpoint held).

        Faust commits the transactions one after the other (`Producer.commit_transactions`),
        each a few round trips, while no event may be handled; they belong to independent
        producers, so they run concurrently here.
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
