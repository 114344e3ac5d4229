"""Table recovery that reads every committed changelog record, and a table manager using it.

`ExactRecovery` replaces Faust's recovery (exact end offsets, no early give-up, no dropped
records, no input record lost after a restore); `StreamTableManager` installs it and keeps the
changelog queue's records when flow control resumes. Why: docs/design.md, "Where the worker
replaces Faust's machinery" (item 7). The changelog offsets are persisted by the commit
(checkpoint.py, step 5).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, MutableMapping
from time import monotonic
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list
from faust.types import TP
from mode import Service

from stream_app.worker.overrides.batching import records_of

log = logging.getLogger(__name__)

#: How many records before the end of a partition are read first to find its last data record.
TAIL_WINDOW = 256


async def last_committed_offsets(
    bootstrap: list[str], tps: Iterable[TP], timeout: float = 60.0, **client_options: Any
) -> dict[TP, int]:
    """Offset of the last committed data record of each partition (start - 1 when none).

    Read with isolation level read_committed from a little before the last stable offset,
    widening the window for a partition until a record is found or its start is reached.
    """
    wanted = sorted(set(tps))
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        client_id="stream-app-recovery-probe",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **client_options,
    )
    await consumer.start()
    try:
        return await asyncio.wait_for(_last_records(consumer, wanted), timeout)
    finally:
        await consumer.stop()


async def _last_records(consumer: AIOKafkaConsumer, wanted: list[TP]) -> dict[TP, int]:
    kafka = {tp: TopicPartition(tp.topic, tp.partition) for tp in wanted}
    starts = await consumer.beginning_offsets(list(kafka.values()))
    ends = await consumer.end_offsets(list(kafka.values()))
    result: dict[TP, int] = {}
    # Per partition: the window [lower, upper) still to read, and its size.
    windows: dict[TP, tuple[int, int, int]] = {}
    for tp, ktp in kafka.items():
        start, end = starts[ktp], ends[ktp]
        if end <= start:
            result[tp] = start - 1
        else:
            windows[tp] = (max(start, end - TAIL_WINDOW), end, TAIL_WINDOW)
    while windows:
        consumer.assign([kafka[tp] for tp in windows])
        for tp, (lower, _, _) in windows.items():
            consumer.seek(kafka[tp], lower)
        last: dict[TP, int] = {}
        reading = set(windows)
        while reading:
            batch = await consumer.getmany(*(kafka[tp] for tp in reading), timeout_ms=200)
            for ktp, records in batch.items():
                tp = TP(ktp.topic, ktp.partition)
                upper = windows[tp][1]
                offsets = [record.offset for record in records if record.offset < upper]
                if offsets:
                    last[tp] = max(offsets[-1], last.get(tp, -1))
            for tp in list(reading):
                if await consumer.position(kafka[tp]) >= windows[tp][1]:
                    reading.discard(tp)
        for tp, (lower, _, size) in list(windows.items()):
            start = starts[kafka[tp]]
            if tp in last:
                result[tp] = last[tp]
                del windows[tp]
            elif lower <= start:
                result[tp] = start - 1
                del windows[tp]
            else:
                windows[tp] = (max(start, lower - size * 4), lower, size * 4)
    return result


def purge_queued(queue: Any) -> int:
    """Remove every queued changelog event from an asyncio queue; return how many."""
    items = queue._queue  # noqa: SLF001, private: asyncio.Queue has no public way to empty it at once
    dropped = len(items)
    items.clear()
    for _ in range(dropped):
        queue._wakeup_next(queue._putters)  # noqa: SLF001, private: wakes a producer blocked on a full queue
    return dropped


class _Change:
    """One changelog record as Faust's table and store read it: an event with a message."""

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message


class ExactRecovery(Recovery):
    """Faust's Recovery with exact highwaters and without the aborted-transaction guess."""

    #: The restore of active partitions in progress: when it started (None: none), the
    #: changelog offsets it has to cover, and the records it has applied so far.
    restore_started: float | None = None
    restore_to_do: int = 0
    restored: int = 0

    async def _seek_offsets(self, consumer: Any, tps: set[TP], offsets: Any, title: str) -> None:
        await super()._seek_offsets(consumer, tps, offsets, title)
        # Once the active partitions are sought, Faust decides whether to restore with this
        # same test: the start line is logged exactly when a restore begins.
        if title == "active" and self.need_recovery():
            self.restore_started_now()

    def restore_started_now(self) -> None:
        """Log the start of a restore: changelog records (offsets) to restore, and where."""
        remaining = self.active_remaining()
        self.restore_started = monotonic()
        self.restore_to_do = sum(remaining.values())
        self.restored = 0
        log.info(
            "restore started: %d changelog records to restore on %d partitions",
            self.restore_to_do,
            sum(1 for n in remaining.values() if n > 0),
        )

    def restore_ended_now(self) -> None:
        """Log the end of a restore (if one ran): records restored, seconds, records/s."""
        if self.restore_started is None:
            return
        seconds = monotonic() - self.restore_started
        self.restore_started = None
        log.info(
            "restore done: %d changelog records restored (of %d offsets) in %.1f s "
            "(%.0f records/s)",
            self.restored,
            self.restore_to_do,
            seconds,
            self.restored / seconds if seconds > 0 else 0.0,
        )

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        if not self.app.in_transaction:
            await super()._build_highwaters(consumer, tps, destination, title)
            return
        conf = self.app.conf
        # The app's own security settings, as Faust gives them to its consumer.
        auth = credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        highwaters = await last_committed_offsets(server_list(conf.broker, 9092), tps, **auth)
        self.log.info(
            "Last committed record of %s changelog partitions:\n%s",
            title,
            self._highwater_logtable(highwaters, title=title),
        )
        destination.clear()
        destination.update(highwaters)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's, with the consumer's flow stopped until the stream queues are cleared."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        self.restore_ended_now()
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                self.app.consumer_generation_id,
                generation_id,
            )
            return
        # Nothing may be delivered to a stream queue between here and flow_control.resume(),
        # which empties them (docs/design.md, "What the drills found", item 7, the last point).
        consumer.stop_flow()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()  # noqa: SLF001
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        """Faust's, after dropping every changelog record still queued from before.

        The changelog queue is not cleared on resume (see `StreamTableManager`), so at a
        rebalance it can still hold records fetched for the previous assignment, possibly
        behind records the loop already skipped while their partition was not assigned here.
        Read after this rebalance, the first such record would pass the loop's "offset above
        what was seen" test for a partition assigned again, move its offset past that hole,
        and the records of the hole, fetched again after the seek, would be skipped as seen:
        committed state missing from the restored table (docs/drills.md, "Held snapshots").
        Every partition is sought again to the offset it was restored up to, so dropping
        loses nothing.
        """
        dropped = purge_queued(self.tables.changelog_queue)
        if dropped:
            self.log.info("rebalance: dropped %d changelog records fetched before it", dropped)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    @Service.task
    async def _slurp_changelogs(self) -> None:
        # Copied from Faust's `Recovery._slurp_changelogs` (faust/tables/recovery.py, 0.15.3) and
        # edited: no detect_aborted_tx, events of partitions the loop does not track skipped,
        # batches of records applied in order (docs/design.md, "What the drills found", item 7).
        changelog_queue = self.tables.changelog_queue
        tp_to_table = self.tp_to_table
        active_tps = self.active_tps
        standby_tps = self.standby_tps
        active_offsets = self.active_offsets
        standby_offsets = self.standby_offsets
        buffers = self.buffers
        buffer_sizes = self.buffer_sizes
        processing_times = self._processing_times

        def maybe_signal_recovery_end() -> None:
            if self.in_recovery and not self.need_recovery():
                self.flush_buffers()
                self._set_recovery_ended()
                self.signal_recovery_end.set()

        while not self.should_stop:
            try:
                self.signal_recovery_end.clear()
                try:
                    event = await asyncio.wait_for(changelog_queue.get(), timeout=5.0)
                except TimeoutError:
                    maybe_signal_recovery_end()
                    continue
                now = monotonic()
                message = event.message
                tp = message.tp
                offsets: MutableMapping[TP, Any]
                bufsize = buffer_sizes.get(tp)
                is_active = tp in active_tps
                if is_active:
                    table = tp_to_table[tp]
                    offsets = active_offsets
                    if bufsize is None:
                        bufsize = buffer_sizes[tp] = table.recovery_buffer_size
                    self._active_events_received_at[tp] = now
                elif tp in standby_tps:
                    table = tp_to_table[tp]
                    offsets = standby_offsets
                    if bufsize is None:
                        bufsize = buffer_sizes[tp] = table.standby_buffer_size
                    self._standby_events_received_at[tp] = now
                else:
                    # Fetched before a rebalance took the partition away: not ours to apply.
                    continue
                # A batch of the partition's records (batching.py) or a single one, in order.
                seen_offset = offsets.get(tp, None)
                fresh: list[Any] = [
                    _Change(record)
                    for record in records_of(message)
                    if seen_offset is None or record.offset > seen_offset
                ]
                if fresh:
                    offsets[tp] = fresh[-1].message.offset
                    buf = buffers[table]
                    buf.extend(fresh)
                    for change in fresh:
                        await table.on_changelog_event(change)
                    if len(buf) >= bufsize:
                        table.apply_changelog_batch(buf)
                        buf.clear()
                        self._last_flush_at = now
                    if is_active:
                        self.restored += len(fresh)
                        now_after = monotonic()
                        last_processed_at = self._last_active_event_processed_at
                        if last_processed_at is not None:
                            processing_times.append(now_after - last_processed_at)
                            if len(processing_times) > self.num_samples_required_for_estimate:
                                processing_times.popleft()
                        self._last_active_event_processed_at = now_after
                maybe_signal_recovery_end()
                standby_ready = self._standbys_span is None and self.tables.standbys_ready
                if not standby_ready and not self.standby_remaining_total():
                    self.tables.on_standbys_ready()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Error in recovery: %r", exc, exc_info=True)


class StreamTableManager(TableManager):
    """Faust's TableManager with ExactRecovery, a queue that keeps its records, and offsets."""

    @property
    def changelog_queue(self) -> Any:
        """Queue of changelog events; not cleared when flow control resumes."""
        if self._changelog_queue is None:
            self._changelog_queue = self.app.FlowControlQueue(
                maxsize=self.app.conf.stream_buffer_maxsize,
                clear_on_resume=False,
            )
        return self._changelog_queue

    @property
    def recovery(self) -> Recovery:
        """The recovery service (ExactRecovery)."""
        if self._recovery is None:
            self._recovery = ExactRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
