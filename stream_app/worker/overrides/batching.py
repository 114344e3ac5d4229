"""One Faust event per fetched batch of one partition, for the topics the agents consume.

Faust hands every record through its consumer, conductor, stream queue and stream iterator,
with several event-loop wakeups and tasks per record; on this workload that costs far more
than the processing itself (docs/performance.md). The agents here take records of one
partition in order and write their state per batch, so the per-record path is not needed:
`BatchingConsumer.getmany` yields, for each partition of an agent's topic, one message that
carries the fetched records (at most `max_batch` of them) and has the offset of the last one.
Faust's offset bookkeeping (read offsets, acks, the commit) then sees a message whose offset
moves by a batch at a time, which is all it needs: the worker's commit uses the offsets its
checkpoint records after each handled message (checkpoint.py), i.e. the last record of a
batch plus one. Records of other topics (table changelogs, Faust's own) keep the per-record
path.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Iterable
from typing import Any

from aiokafka import TopicPartition
from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

#: Default cap on the records of one batch event (STREAM_APP_MAX_BATCH).
DEFAULT_MAX_BATCH = 500
#: The longest one call for records waits in the consumer thread, in seconds (Faust's drain
#: loop asks for 1 s). The partitions it asks for are fixed when it is made; see `getmany`.
FETCH_WAIT_SECONDS = 0.01


class RecordBatch(ConsumerMessage):
    """Consecutive records of one partition, standing in Faust for the last of them."""

    records: list[Any]
    #: When Faust's consumer handed the batch over (time.time()), for the stage metrics.
    handed_over_at: float


def records_of(message: Any) -> list[Any]:
    """The records a consumed message stands for: a batch's, or the message itself."""
    records: list[Any] | None = getattr(message, "records", None)
    return [message] if records is None else records


class BatchingConsumer(Consumer):
    """Faust's aiokafka consumer, yielding one message per partition batch for some topics.

    The app names the topics (`batched_topics`) and the cap (`max_batch`) before it starts.
    """

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """Faust's `Consumer.getmany` (faust/transport/consumer.py, 0.15.3), copied and edited:
        it batches per partition, marks a batch's records read, and waits at most
        FETCH_WAIT_SECONDS for records.

        Why the wait is short: the call takes the partitions that are active when it is made.
        When an agent's queue is full (e.g. while a commit holds the checkpoint) Faust takes
        its partitions out of the active set; a call made then waited up to 1 s for records of
        the others, while the left-out partitions' records sat in aiokafka's buffer, and
        aiokafka fetches nothing from a broker for up to 100 ms (`prefetch_backoff`) while
        records it fetched are not taken: about 1 % of the records waited ~100 ms, once or
        twice a second (docs/performance.md, "Latency, stage by stage"). A short wait lets
        the next call ask again as soon as the partitions are active again.
        """
        records, active_partitions = await self._wait_next_records(min(timeout, FETCH_WAIT_SECONDS))
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            # As Faust: records fetched while flow is stopped are not handed over.
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning("exception performing seek when flow not active %r", exc)
            return
        app: Any = self.app  # the StreamApp, which names the batched topics
        batched: Collection[str] = app.batched_topics
        max_batch: int = app.max_batch
        for tp, tp_records in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if not (
                active_partitions is None
                or tp in active_partitions
                or tp in self._buffered_partitions  # private: Faust's own bookkeeping
            ):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic not in batched:
                for record in tp_records:
                    yield tp, self._to_message(tp, record)
                continue
            read_offset = self._read_offset  # private: Faust's own bookkeeping
            for start in range(0, len(tp_records), max_batch):
                batch = self._to_batch(tp, tp_records[start : start + max_batch])
                # Faust's drain loop (`Consumer._drain_messages`) takes a message whose offset
                # is more than one past the last one read for a gap in the partition and files
                # it in an interval tree, at a cost that grows with the gaps kept until the
                # next commit. A batch's offset is its last record's: the records before it
                # are marked read here, so that batches leave no gaps.
                last_read = read_offset[tp]
                if last_read is not None and last_read < batch.offset - 1:
                    read_offset[tp] = batch.offset - 1
                yield tp, batch

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        """Faust's bookkeeping, and the aiokafka consumer's: a paused partition is not fetched.

        Faust's `Consumer.pause_partitions` (faust/transport/consumer.py) only stops handing
        the partition's records over; aiokafka keeps fetching it, and its fetcher holds a
        fetch's records until they are taken, for every partition. After a restore the
        active tables' changelog partitions are paused this way, so the worker fetched its own
        changelog writes back and left them in aiokafka's buffer; while any partition of a
        broker holds untaken records, aiokafka fetches nothing else from that broker for
        100 ms after they arrived (`prefetch_backoff`): a stall on every fetch.
        """
        paused = set(tps)
        super().pause_partitions(paused)
        self._set_fetching(paused, fetch=False)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        """Faust's bookkeeping, and the aiokafka consumer's (see `pause_partitions`)."""
        resumed = set(tps)
        super().resume_partitions(resumed)
        self._set_fetching(resumed, fetch=True)

    def _set_fetching(self, tps: set[TP], *, fetch: bool) -> None:
        # The aiokafka consumer runs in Faust's consumer thread, on that thread's loop.
        thread: Any = self._thread
        client = getattr(thread, "_consumer", None)
        loop = getattr(thread, "thread_loop", None)
        if client is None or loop is None or loop.is_closed() or not tps:
            return
        loop.call_soon_threadsafe(_set_client_fetching, client, tps, fetch)

    def _to_batch(self, tp: TP, records: list[Any]) -> RecordBatch:
        last = records[-1]
        batch = RecordBatch(
            last.topic,
            last.partition,
            last.offset,
            (last.timestamp or 0) / 1000.0,
            last.timestamp_type,
            None,
            None,
            None,
            None,
            0,
            0,
            tp,
            generation_id=self.app.consumer_generation_id,
        )
        # Faust's own message per record: timestamps in seconds, as the processors expect.
        batch.records = [self._to_message(tp, record) for record in records]
        batch.handed_over_at = time.time()
        return batch


def _set_client_fetching(client: Any, tps: set[TP], fetch: bool) -> None:
    """Pause or resume fetching in the aiokafka consumer, for the partitions it still has."""
    assigned = client.assignment()
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
    wanted = [tp for tp in wanted if tp in assigned]
    if wanted:
        (client.resume if fetch else client.pause)(*wanted)
