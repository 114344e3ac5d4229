"""Windowed statistics per application in the worker (contract section 11).

Two halves, joined by the internal partials topic (keyed by applicationId):

- `StatsSource`, inside the session agent: each applied event is counted into its
  application's window for the batch (`count`); at the end of the batch the figures leave as
  one partial per (application, window) in the batch's outbox, so they are sent, and committed
  under exactly_once, together with the state changes they come from (`end_batch`). The
  source keeps its partition's stream time; when the windows it closes move on, it sends a
  watermark to every partition of the partials topic, behind its partials.
- `StatsCombiner`, the body of the `stats` agent: per application it adds the partials of
  every source partition into the `stats` table (changelogged like the others), and closes a
  window once every source partition's watermark has passed its end: the final figures go to
  the stats topic, in the same unit of work as the window's `closed` mark.

A partition with no input for STREAM_APP_STATS_IDLE and nothing waiting gets a tick on the
internal ticks topic (`send_ticks`, from a timer): the session agent reads it in the
partition's order, and it moves the partition's stream time to the tick's wall-clock time, so
windows close while traffic has stopped on part of the input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from stream_app.domain import CustomerSession, Event, Rejected
from stream_app.domain.stats import (
    CLOCK_KEY,
    CombinerClock,
    Figures,
    StatsPartial,
    StatsWatermark,
    StoredWindow,
    Windowing,
    WindowStats,
    closed_key,
    decode_combiner_clock,
    decode_stats_message,
    decode_window,
    encode_stats_record,
    encode_window_stats,
    index_stop,
    indexed_window,
    is_window,
    open_key,
    record_event,
    window_key,
    window_of_key,
    window_range,
    window_stats,
)
from stream_app.settings import Settings
from stream_app.worker.dead_letters import DeadLetters
from stream_app.worker.expiry import MAX_EVENT_TIME_AHEAD
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import BatchState, BatchWriter, Message, Outbox, Table

log = logging.getLogger(__name__)

_AHEAD_SECONDS = MAX_EVENT_TIME_AHEAD.total_seconds()
#: Index entries read at a time when windows close or leave.
_SCAN_LIMIT = 1000


def windowing_of(settings: Settings) -> Windowing:
    """The windows the settings ask for."""
    return Windowing(settings.stats_window, settings.stats_grace)


@dataclass
class SourceClock:
    """A partition's stream time as the stats see it (in memory, like retention's)."""

    stream_time: float
    #: Windows ending at or before this are closed on the partition.
    closed_through: int
    #: The rebalance it was started in: the partition may have had another owner since.
    generation: int
    #: The closed_through last sent as a watermark (None: none since it started).
    sent_through: int | None = None


@dataclass
class StatsSource:
    """The session agent's half: counts applied events, sends partials and watermarks."""

    settings: Settings
    metrics: Metrics
    #: Partitions of the partials topic (the same as every topic of the worker's).
    partitions: int
    clocks: dict[int, SourceClock] = field(default_factory=dict)
    #: Per partition, when (time.monotonic) it last applied an event: a partition with traffic
    #: that applies nothing (rejected records only) has no stream time and needs ticks too.
    last_input: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.windowing = windowing_of(self.settings)
        # The batch's figures per (applicationId, window start), and whether it applied any.
        self._batch: dict[tuple[int, int], Figures] = {}
        self._applied = False

    def count(
        self,
        partition: int,
        before: CustomerSession | None,
        after: CustomerSession,
        event: Event,
        message: Message,
    ) -> None:
        """Count an applied event into its window, unless the partition has closed it.

        Called for every applied event: the occurredAt's timestamp is taken once.
        """
        self._applied = True
        windowing = self.windowing
        occurred = event.occurred_at.timestamp()
        start = windowing.start_at(occurred)
        clock = self._current(partition)
        if clock is not None and windowing.is_late(start, clock.closed_through):
            self.metrics.stats_late_events["source"] += 1
            log.debug(
                "event %r of %s[%d]@%d is late for the statistics: its window (start %d, epoch "
                "seconds) closed on the partition (stream time %.3f)",
                event.event_id,
                message.topic,
                message.partition,
                message.offset,
                start,
                clock.stream_time,
            )
        elif not windowing.is_representable(start):
            # Only at the ends of the calendar: no record could name the window.
            self.metrics.stats_late_events["source"] += 1
            log.debug("event %r: its window (start %d) is outside years 1 to 9999",
                      event.event_id, start)  # fmt: skip
        else:
            window = (after.application_id, start)
            figures = self._batch.get(window)
            if figures is None:
                figures = self._batch[window] = Figures()
            record_event(figures, before, after, event)
        if clock is None or occurred > clock.stream_time:
            self._advance(partition, clock, min(occurred, message.timestamp + _AHEAD_SECONDS))

    def tick(self, partition: int, at: float, sent_at: float) -> None:
        """A tick: the partition had no input; its stream time follows the wall clock (at
        most an hour past the tick record's timestamp, `sent_at`, as for an event)."""
        self._advance(partition, self._current(partition), min(at, sent_at + _AHEAD_SECONDS))

    def end_batch(self, source: Message, outbox: Outbox) -> None:
        """Add the batch's partials, then a watermark if the partition closed windows."""
        partition = source.partition
        if self._applied:
            self.last_input[partition] = time.monotonic()
            self._applied = False
        if self._batch:
            topic = self.settings.stats_partials_topic
            origin = ("r" if source.topic == self.settings.rekeyed_topic else "i") + str(partition)
            size = self.windowing.size
            for sequence, ((application_id, start), figures) in enumerate(self._batch.items()):
                partial = StatsPartial(
                    application_id, start, start + size, origin, source.offset, sequence, figures
                )
                outbox.send(topic, str(application_id).encode(), encode_stats_record(partial))
            self._batch = {}
        clock = self._current(partition)
        if clock is None or clock.sent_through == clock.closed_through:
            return
        watermark = encode_stats_record(StatsWatermark(partition, clock.closed_through))
        for target in range(self.partitions):
            outbox.send(self.settings.stats_partials_topic, None, watermark, target)
        clock.sent_through = clock.closed_through

    def idle_partitions(
        self, assigned: Iterable[int], lag: Mapping[int, int], now: float, idle: float
    ) -> list[int]:
        """The assigned partitions that have applied no event for `idle` seconds and have no
        record waiting (`lag`: per partition, records not committed; absent: not known yet)."""
        found = []
        for partition in assigned:
            last = self.last_input.setdefault(partition, now)
            if now - last >= idle and lag.get(partition) == 0:
                found.append(partition)
                self.last_input[partition] = now  # one tick per idle period
        return found

    def _advance(self, partition: int, clock: SourceClock | None, at: float) -> None:
        closed_through = self.windowing.closed_through(at)
        if clock is None:
            self.clocks[partition] = SourceClock(at, closed_through, self.metrics.rebalances)
        elif at > clock.stream_time:
            clock.stream_time = at
            clock.closed_through = closed_through

    def _current(self, partition: int) -> SourceClock | None:
        clock = self.clocks.get(partition)
        if clock is None or clock.generation != self.metrics.rebalances:
            return None
        return clock


def encode_tick(at: float) -> bytes:
    """A tick's value: the wall-clock time it was sent, in epoch milliseconds."""
    return str(round(at * 1000)).encode()


def decode_tick(raw: bytes) -> float | None:
    """A tick's time in epoch seconds, None if the value is not a tick."""
    if not (raw.isdigit() and raw.isascii() and len(raw) <= 15):
        return None
    return int(raw) / 1000


@dataclass
class StatsCombiner:
    """The `stats` agent's body: adds partials per application and window, closes windows."""

    settings: Settings
    table: Table
    writer: BatchWriter
    metrics: Metrics
    #: Source partitions (the input's partition count).
    partitions: int
    #: The partition of the stats table an applicationId's windows live in.
    partition_of: Callable[[bytes], int]
    dead_letters: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self.dead_letters = DeadLetters(self.settings, self.metrics)
        retention = self.settings.stats_retention
        self._retention = None if retention is None else int(retention.total_seconds())

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        """Add the partials and watermarks of one partition's batch, close what they close."""
        if not messages:
            return
        self.metrics.observe_batch("stats", len(messages))
        last = messages[-1]
        partition = last.partition
        stored_clock = self.table.get(partition, CLOCK_KEY)
        clock = CombinerClock() if stored_clock is None else decode_combiner_clock(stored_clock)
        windows = BatchState(self.table, partition, decode_window, encode_stats_record)
        index: dict[str, bytes | None] = {}
        outbox = Outbox()
        closable = clock.closable(self.partitions)
        for message in messages:
            sent_before = len(outbox.records)
            try:
                decoded = decode_stats_message(message.value or b"")
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                rejected = Rejected("invalid_internal_record", f"Not a statistics record: {exc}")
                self.dead_letters.reject(rejected, message, outbox)
                continue
            try:
                if isinstance(decoded, StatsWatermark):
                    if self._watermark(decoded, clock, message, outbox):
                        closable = clock.closable(self.partitions)
                elif not is_window(decoded.window_start, decoded.window_end):
                    why = f"Partial of window {decoded.window_start} to {decoded.window_end}"
                    rejected = Rejected("invalid_internal_record", why)
                    self.dead_letters.reject(rejected, message, outbox)
                elif clock.is_new(decoded):
                    self._add(decoded, closable, windows, index, message)
                else:
                    self.metrics.stats_partials_repeated += 1
            except Exception as exc:
                self.dead_letters.failed(exc, message, outbox, sent_before)
        if closable is not None and (
            clock.emitted_through is None or closable > clock.emitted_through
        ):
            self._close(partition, closable, windows, index, outbox)
            clock.emitted_through = closable
        index[CLOCK_KEY] = encode_stats_record(clock)
        await self.writer.write(last, outbox, [*windows.changes(), *index.items()])

    def windows(self, application_id: int, start: int, stop: int) -> list[WindowStats]:
        """The application's windows starting in [start, stop), closed and open, oldest first."""
        partition = self.partition_of(str(application_id).encode())
        first, end = window_range(application_id, start, stop)
        found: list[WindowStats] = []
        while True:
            rows, following = self.table.scan(partition, first, end, _SCAN_LIMIT)
            for key, value in rows:
                found.append(window_stats(application_id, window_of_key(key), decode_window(value)))
            if following is None or following >= end or not rows:
                return found
            first = following

    def _watermark(
        self, watermark: StatsWatermark, clock: CombinerClock, message: Message, outbox: Outbox
    ) -> bool:
        """Record a source's watermark; whether it moved."""
        source = watermark.partition
        if not 0 <= source < self.partitions:
            why = f"Watermark of partition {source}, not one of 0 to {self.partitions - 1}"
            self.dead_letters.reject(Rejected("invalid_internal_record", why), message, outbox)
            return False
        if watermark.closed_through > message.timestamp + _AHEAD_SECONDS:
            # No source's stream time runs more than an hour ahead of its records.
            why = f"Watermark {watermark.closed_through} of partition {source} is in the future"
            self.dead_letters.reject(Rejected("invalid_internal_record", why), message, outbox)
            return False
        if watermark.closed_through <= clock.closed.get(source, watermark.closed_through - 1):
            return False
        clock.closed[source] = watermark.closed_through
        return True

    def _add(
        self,
        partial: StatsPartial,
        closable: int | None,
        windows: BatchState[StoredWindow],
        index: dict[str, bytes | None],
        message: Message,
    ) -> None:
        application_id, start = partial.application_id, partial.window_start
        if closable is not None and partial.window_end <= closable:
            # Only after a rebalance: the source's stream time restarted below a window the
            # combiner has closed (contract section 11, "Late events").
            self.metrics.stats_late_events["combiner"] += partial.figures.events_applied
            log.debug(
                "%d events of application %d from %s (%s[%d]@%d) are late for the "
                "statistics: window (start %d, epoch seconds) closed",
                partial.figures.events_applied,
                application_id,
                partial.source,
                message.topic,
                message.partition,
                message.offset,
                start,
            )
            return
        key = window_key(application_id, start, partial.window_end)
        window = windows.get(key)
        if window is None:
            window = StoredWindow(partial.window_end, Figures())
            index[open_key(partial.window_end, application_id, start)] = b""
        window.figures.add(partial.figures)
        windows.put(key, window)

    def _close(
        self,
        partition: int,
        through: int,
        windows: BatchState[StoredWindow],
        index: dict[str, bytes | None],
        outbox: Outbox,
    ) -> None:
        """Emit and mark closed every open window ending at or before `through`; then let
        closed windows older than the retention go."""
        stop = index_stop("o", through)
        entries = self._entries(partition, "o", stop, index)
        for entry in entries:
            application_id, start, end = indexed_window(entry)
            index[entry] = None
            key = window_key(application_id, start, end)
            window = windows.get(key)
            if window is None or window.closed:
                continue
            window.closed = True
            windows.put(key, window)
            index[closed_key(window.window_end, application_id, start)] = b""
            outbox.send(
                self.settings.stats_topic,
                str(application_id).encode(),
                encode_window_stats(window_stats(application_id, start, window)),
            )
            self.metrics.stats_windows_closed += 1
        if self._retention is None:
            return
        expired = index_stop("c", through - self._retention)
        for entry in self._entries(partition, "c", expired, index):
            application_id, start, end = indexed_window(entry)
            index[entry] = None
            windows.delete(window_key(application_id, start, end))

    def _entries(
        self, partition: int, prefix: str, stop: str, pending: dict[str, bytes | None]
    ) -> list[str]:
        """Index entries of `prefix` before `stop`: stored ones and the batch's new ones."""
        found = {
            key
            for key, value in pending.items()
            if key.startswith(prefix) and key < stop and value is not None
        }
        first = prefix
        while True:
            rows, following = self.table.scan(partition, first, stop, _SCAN_LIMIT)
            found.update(key for key, _ in rows if pending.get(key, b"") is not None)
            if following is None or following >= stop or not rows:
                return sorted(found)
            first = following


class StatsQueryError(ValueError):
    """A GET /stats request names no valid application or time."""


#: The widest range of window starts a query can ask for (epoch seconds).
EARLIEST, LATEST = -(10**10), 10**11


def stats_query(application_id: str, start: str | None, stop: str | None) -> tuple[int, int, int]:
    """(applicationId, from, to) of a GET /stats request: `from` and `to` are ISO 8601 times
    (UTC when no offset is given) or epoch seconds; windows starting in [from, to) answer."""
    # Only the canonical text: the request is routed by the text's hash, the windows are kept
    # under the number's ("042" would be asked of the owner of another partition).
    canonical = application_id.isascii() and application_id.isdigit() and len(application_id) < 20
    if not canonical or application_id != str(int(application_id)) or int(application_id) < 1:
        raise StatsQueryError(f"applicationId {application_id!r} is not a positive integer")
    return int(application_id), _bound("from", start, EARLIEST), _bound("to", stop, LATEST)


def _bound(name: str, text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        if text.lstrip("-").isdigit():
            value = int(text)
        else:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
            value = int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
    except (ValueError, OverflowError):
        value = None
    if value is None or not EARLIEST <= value <= LATEST:
        raise StatsQueryError(f"{name}={text!r}: expected an ISO 8601 time or epoch seconds")
    return value
