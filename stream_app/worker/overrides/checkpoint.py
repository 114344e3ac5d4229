"""The commit: what is handled, what is written, and what is committed, in one object.

Faust commits from a timer task that can run whenever an agent awaits, i.e. in the middle of a
batch, and it picks the offsets to commit before flushing while agents keep running: a
transaction could then hold half of a batch's records, or records of a batch whose offset it
does not carry. Here the agents hold the checkpoint's lock while they handle one batch up to its
ack (`Checkpoint.handle`), and the commit holds it from start to end (`Checkpoint.commit`):
every commit covers whole batches and exactly their records. Faust's timer, its `wait_empty`
(stop, rebalance) and its `commit_every` all call `Consumer.commit`, which is this commit
(transactions.py).

What differs between the guarantees (how records are written, what a commit commits) is the
writer's (writers.py), chosen once, in the composition root.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from faust.types import TP

from stream_app.worker.metrics import Metrics
from stream_app.worker.overrides.batching import records_of
from stream_app.worker.overrides.writers import GuaranteeWriter

log = logging.getLogger(__name__)

#: Exit status of a worker that stops hard because handling a batch failed unexpectedly.
EXIT_EVENT_FAILED = 70


class Checkpoint:
    """The offsets of handled batches, the lock that keeps commits between them, the commit."""

    def __init__(
        self, app: Any, writer: GuaranteeWriter, metrics: Metrics, input_topic: str = ""
    ) -> None:
        self.app = app
        self.writer = writer
        self.metrics = metrics
        #: The fetch stage is measured on the input topic's records: the records of the
        #: internal topics wait for the commit that makes them visible (the deliver stage).
        self.input_topic = input_topic
        self.lock = asyncio.Lock()
        #: Per partition, the offset after the last batch handled and not committed yet.
        self.handled: dict[TP, int] = {}
        #: Set by the last commit of a clean stop: nothing may be handled after it.
        self.closed = False
        #: Set when a commit failed: the stop that follows is not clean.
        self.failed = False
        #: Called once the last commit of a clean stop has succeeded (see local_state.py).
        self.on_clean_stop: list[Callable[[], None]] = []
        #: Whether the last commit of a stop succeeded (and nothing crashed before it).
        self.stopped_cleanly = False

    async def handle(self, event: Any, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (the handling of `event`, a batch) and ack it, with no commit in between.

        Shielded: when Faust cancels the agent (on stop or rebalance) the batch is still
        finished and acked before the next commit, instead of being half-sent. An exception
        that escapes the processors' per-record guard (dead_letters.py), e.g. a failed send,
        means the batch's outcome is unknown; committing anything after it could mark it done,
        so the worker exits at once and its successor starts again from the last commit,
        exactly as after a kill -9.
        """
        await asyncio.shield(self._handle(event, work))

    async def _handle(self, event: Any, work: Coroutine[Any, Any, None]) -> None:
        waiting = time.time()
        records = records_of(event.message)
        async with self.lock:
            locked = time.time()
            if self.closed:
                work.close()
                return  # after the final commit: left for the next run, unacked
            self.writer.batch_records = len(records)
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
            self.handled[tp] = max(self.handled.get(tp, 0), message.offset + 1)
            self._observe_stages(message, records, waiting, locked)

    def _observe_stages(
        self, message: Any, records: list[Any], waiting: float, locked: float
    ) -> None:
        """Where the batch's time went, per record (metrics.STAGES); the deliver stage is the
        writer's (it knows when its records are acknowledged or committed)."""
        metrics, n = self.metrics, len(records)
        handed_over: float | None = getattr(message, "handed_over_at", None)
        if handed_over is not None:
            if message.topic == self.input_topic:
                fetch = metrics.stages["fetch"]
                for record in records:
                    fetch.observe(max(handed_over - record.timestamp, 0.0))
            metrics.observe_stage("queue", waiting - handed_over, n)
        metrics.observe_stage("lock", locked - waiting, n)
        write_started, write_ended = self.writer.last_write
        if write_started >= locked:  # this batch's write
            metrics.observe_stage("apply", write_started - locked, n)
            metrics.observe_stage("write", write_ended - write_started, n)

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Commit every batch handled so far, with everything it wrote. Replaces Faust's
        `Consumer.commit`; `topics` is ignored (every assigned partition is committed).

        1. Hold the lock: no batch is being handled, none starts until the commit ends.
        2. Flush (the writer): under at_least_once the changelog records held back behind
           their outputs are sent and every send is acknowledged; under exactly_once nothing
           (the transaction commit flushes).
        3. Choose the offsets: per partition, the offset after the last handled batch, for
           the partitions still assigned (a revoked partition's batches were committed at the
           revocation, or will be handled again by its new owner). Nothing handled: done.
        4. Commit (the writer): under exactly_once each source partition's transaction, with
           its offsets, all at once; under at_least_once the consumer offsets.
        5. Persist the changelog offsets noted for the committed partitions into their
           RocksDB databases (writers.ChangelogOffsets): a restore starts from there.
        6. Faust's bookkeeping: its committed offsets, its acks and gaps of those
           partitions, its monitor.
        7. With start_new_transaction=False while the app stops, this is the final commit:
           afterwards nothing is handled or committed any more, and if everything went well
           the stop was clean: the local tables are declared clean (local_state.py) and
           `stopped_cleanly` is set.

        A commit that fails (an exception, or step 4 refusing) marks the checkpoint failed:
        the stop that follows is not clean, and the next worker starts from the last commit.
        """
        app, consumer = self.app, self.app.consumer
        async with self.lock:  # 1
            if self.closed:
                return False
            final = start_new_transaction is False and (app.should_stop or consumer.should_stop)
            started = time.monotonic()
            try:
                committed = await self._commit(consumer, start_new_transaction)
                if committed:
                    self.metrics.commits.observe(time.monotonic() - started)
            except BaseException:
                self.failed = True
                raise
            if final:  # 7
                self.closed = True
                if not (self.failed or consumer.crashed or app.crashed):
                    self.stopped_cleanly = True
                    for callback in self.on_clean_stop:
                        callback()
            return committed

    async def _commit(self, consumer: Any, start_new_transaction: bool) -> bool:
        writer = self.writer
        await writer.flush()  # 2
        assignment = consumer.assignment()
        for tp in [tp for tp in self.handled if tp not in assignment]:  # 3
            del self.handled[tp]
        offsets = dict(self.handled)
        if not offsets:
            return False
        if not await writer.commit(offsets, start_new_transaction):  # 4
            self.failed = True
            return False
        writer.changelog.persist(writer.committed_partitions(offsets))  # 5
        self.handled.clear()  # the lock is held: nothing was handled meanwhile
        consumer._committed_offset.update(offsets)  # 6 (private: Faust's bookkeeping)  # noqa: SLF001
        consumer._filter_committable_offsets(list(offsets))  # noqa: SLF001, private: drops acks and gaps
        self.app.monitor.on_tp_commit(offsets)
        return True
