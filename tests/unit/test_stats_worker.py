"""Windowed statistics in the worker (contract section 11): the session agent's half that counts
events and sends partials and watermarks (StatsSource), and the stats agent's body that adds them
up and closes windows (StatsCombiner), on the in-memory fakes of test_processors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from stream_app.domain import (
    Applied,
    CustomerSession,
    Event,
    StoredSession,
    apply_event,
    decode_customer_session,
    decode_rejection,
    decode_stored,
)
from stream_app.domain.stats import (
    CLOCK_KEY,
    FIRST_WINDOW_START,
    Figures,
    StatsMessage,
    StatsPartial,
    StatsWatermark,
    WindowStats,
    closed_key,
    contribution,
    decode_combiner_clock,
    decode_stats_message,
    decode_window_stats,
    encode_stats_record,
    money,
    open_key,
    window_key,
)
from stream_app.settings import Settings
from stream_app.worker import stats as worker_stats
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import Outbox, OutputRecord
from stream_app.worker.sessions import SessionProcessor
from stream_app.worker.stats import (
    EARLIEST,
    LATEST,
    StatsCombiner,
    StatsSource,
    decode_tick,
    encode_tick,
)

from .builders import CART, decoded, give_back, raw, update
from .test_processors import INPUT, SETTINGS, FakeTable, Message

STATS = replace(SETTINGS, stats_window=60, stats_grace=30, stats_retention=timedelta(minutes=10))
PARTIALS = STATS.stats_partials_topic
TICKS = STATS.stats_ticks_topic
#: 2026-11-25T10:00:00Z, the start of a window.
T0 = 1_795_600_800

Step = tuple[CustomerSession | None, CustomerSession, Event]


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(T0 + seconds, UTC).isoformat()


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def event_at(
    event_id: str, seconds: float, session: str = "s1", application_id: int = 322, **fields: Any
) -> dict[str, Any]:
    """An update of `session` at T0 + seconds."""
    event = update(event_id, stamp(seconds), **fields)
    return {**event, "integrationId": session, "applicationId": application_id}


def created(session: str, seconds: float, application_id: int = 322) -> Step:
    """A session created at T0 + seconds: (None, the new session, its event)."""
    event = decoded(event_at(f"e-{session}", seconds, session, application_id))
    result = apply_event(None, event, None)
    assert isinstance(result, Applied), result
    return None, result.stored.session, event


def input_message(offset: int, seconds: float = 0, topic: str = INPUT) -> Message:
    """A record of partition 3 stamped at T0 + seconds."""
    return Message(topic, b"k", b"", partition=3, offset=offset, timestamp=T0 + seconds)


def count(source: StatsSource, step: Step, offset: int = 0, partition: int = 3) -> None:
    before, after, event = step
    message = Message(
        INPUT,
        after.integration_id.encode(),
        b"",
        partition,
        offset,
        timestamp=event.occurred_at.timestamp(),
    )
    source.count(partition, before, after, event, message)


def ended(source: StatsSource, message: Message) -> list[OutputRecord]:
    outbox = Outbox()
    source.end_batch(message, outbox)
    return outbox.records


def partials_in(records: Sequence[Any]) -> list[StatsPartial]:
    found = [decode_stats_message(r.value) for r in records if r.topic == PARTIALS]
    return [m for m in found if isinstance(m, StatsPartial)]


def watermarks_in(records: Sequence[Any]) -> list[tuple[int | None, StatsWatermark]]:
    """(target partition, watermark) of each watermark sent."""
    found = []
    for record in records:
        if record.topic == PARTIALS:
            message = decode_stats_message(record.value)
            if isinstance(message, StatsWatermark):
                found.append((record.partition, message))
    return found


def source() -> tuple[StatsSource, Metrics]:
    metrics = Metrics()
    return StatsSource(STATS, metrics, partitions=3), metrics


# The source: counting, partials and watermarks.


def test_an_event_for_a_window_its_partition_closed_is_not_counted_but_counted_as_late() -> None:
    stats, metrics = source()
    count(stats, created("a", 100))  # stream time 100 >= 60 + 30: [0, 60) is closed
    count(stats, created("b", 59.9))  # late
    count(stats, created("c", 60))  # [60, 120): open
    partials = partials_in(ended(stats, input_message(7)))
    assert [(p.window_start, p.figures) for p in partials] == [
        (T0 + 60, Figures(sessions_created=2, events_applied=2))
    ]
    assert metrics.stats_late_events == {"source": 1}
    # Another partition has its own stream time.
    count(stats, created("d", 0), partition=4)
    partials = partials_in(ended(stats, Message(INPUT, b"d", b"", partition=4, offset=0)))
    assert [(p.window_start, p.source, p.figures.events_applied) for p in partials] == [
        (T0, "i4", 1)
    ]
    assert metrics.stats_late_events == {"source": 1}


def test_an_event_is_counted_until_stream_time_reaches_its_window_end_plus_the_grace() -> None:
    stats, metrics = source()
    count(stats, created("a", 89.999))
    count(stats, created("b", 0))  # 89.999 < 60 + 30: still open
    count(stats, created("c", 90))
    count(stats, created("d", 59))  # 90: closed
    partials = partials_in(ended(stats, input_message(4)))
    assert [(p.window_start, p.figures.events_applied) for p in partials] == [(T0 + 60, 2), (T0, 1)]
    assert metrics.stats_late_events["source"] == 1


def test_end_batch_sends_one_partial_per_application_and_window_then_a_watermark() -> None:
    stats, _ = source()
    steps = [
        created("a", 10),
        created("b", 70),
        created("c", 20, application_id=323),
        created("d", 15),
    ]
    for step in steps:
        count(stats, step)
    records = ended(stats, input_message(41, 15))
    assert [(r.topic, r.key, r.partition) for r in records] == [
        (PARTIALS, b"322", None),
        (PARTIALS, b"322", None),
        (PARTIALS, b"323", None),
        # Behind the partials, to every partition of the partials topic.
        (PARTIALS, None, 0),
        (PARTIALS, None, 1),
        (PARTIALS, None, 2),
    ]
    one = Figures(sessions_created=1, events_applied=1)
    two = Figures(sessions_created=2, events_applied=2)
    assert partials_in(records) == [
        StatsPartial(322, T0, T0 + 60, "i3", 41, 0, two),
        StatsPartial(322, T0 + 60, T0 + 120, "i3", 41, 1, one),
        StatsPartial(323, T0, T0 + 60, "i3", 41, 2, one),
    ]
    # Stream time 70: windows ending at or before 40 are closed.
    assert watermarks_in(records) == [(n, StatsWatermark(3, T0)) for n in range(3)]

    # Stream time 75: closed_through has not moved, no watermark.
    count(stats, created("e", 75), offset=42)
    records = ended(stats, input_message(42))
    assert partials_in(records) == [StatsPartial(322, T0 + 60, T0 + 120, "i3", 42, 0, one)]
    assert watermarks_in(records) == []

    # Nothing counted and nothing closed: nothing sent.
    assert ended(stats, input_message(43)) == []

    # Stream time 95: [0, 60) closes.
    count(stats, created("f", 95), offset=44)
    records = ended(stats, input_message(44, topic=STATS.rekeyed_topic))
    assert [p.source for p in partials_in(records)] == ["r3"]
    assert watermarks_in(records) == [(n, StatsWatermark(3, T0 + 60)) for n in range(3)]


def test_the_figures_of_a_partial_are_those_of_its_events() -> None:
    stats, _ = source()
    state: StoredSession | None = None
    expected = Figures()
    for event_fields in [
        event_at("e1", 1, cart_items=CART, coupon="C1"),
        event_at("e2", 2, state="closed"),
        {**give_back("e3", [{"position": 0}], stamp(3)), "integrationId": "s1"},
        event_at("e4", 4, state="cancelled"),
    ]:
        event = decoded(event_fields)
        result = apply_event(state, event, None)
        assert isinstance(result, Applied), result
        step = (None if state is None else state.session, result.stored.session, event)
        count(stats, step)
        expected.add(contribution(*step))
        state = result.stored
    [partial] = partials_in(ended(stats, input_message(9)))
    assert partial.figures == expected
    assert partial.figures == Figures(1, 1, 1, 1, Decimal(43), Decimal(30), Decimal(0), 1, 4)


def test_a_tick_moves_stream_time_to_its_wall_clock_time() -> None:
    stats, metrics = source()
    count(stats, created("a", 10))
    assert watermarks_in(ended(stats, input_message(1)))[0][1] == StatsWatermark(3, T0 - 60)
    stats.tick(3, T0 + 200, T0 + 200)
    records = ended(stats, input_message(0, topic=TICKS))
    assert partials_in(records) == []
    # 200 - 30: windows ending at or before 120 are closed.
    assert watermarks_in(records) == [(n, StatsWatermark(3, T0 + 120)) for n in range(3)]
    assert stats.clocks[3].stream_time == T0 + 200
    count(stats, created("b", 100))
    assert metrics.stats_late_events["source"] == 1
    # A tick behind stream time changes nothing.
    stats.tick(3, T0 + 150, T0 + 150)
    assert stats.clocks[3].stream_time == T0 + 200
    assert ended(stats, input_message(1, topic=TICKS)) == []
    # A partition without a clock starts one at the tick's time.
    stats.tick(5, T0 + 90, T0 + 90)
    records = ended(stats, Message(TICKS, None, b"", partition=5, offset=0))
    assert watermarks_in(records) == [(n, StatsWatermark(5, T0 + 60)) for n in range(3)]
    # A tick far ahead of its record's timestamp moves stream time an hour past it at most.
    stats.tick(5, T0 + 10**9, T0 + 100)
    assert stats.clocks[5].stream_time == T0 + 100 + 3600


def test_after_a_rebalance_a_partition_s_stream_time_starts_again() -> None:
    stats, metrics = source()
    count(stats, created("a", 100))
    assert watermarks_in(ended(stats, input_message(1)))[0][1] == StatsWatermark(3, T0 + 60)
    metrics.rebalances += 1
    count(stats, created("b", 10))  # no longer late: the partition may have had another owner
    records = ended(stats, input_message(2))
    assert [(p.window_start, p.figures.events_applied) for p in partials_in(records)] == [(T0, 1)]
    assert watermarks_in(records)[0][1] == StatsWatermark(3, T0 - 60)
    assert metrics.stats_late_events["source"] == 0


def test_only_partitions_idle_for_the_period_with_nothing_waiting_get_a_tick() -> None:
    stats, _ = source()
    assigned = [0, 1, 2, 3]
    lag = {0: 0, 1: 0, 2: 7}  # 3: not known yet
    assert stats.idle_partitions(assigned, lag, 1000.0, 30) == []  # first seen: idle from now
    stats.last_input[1] = 1010.0  # partition 1 had a record
    assert stats.idle_partitions(assigned, lag, 1029.9, 30) == []
    assert stats.idle_partitions(assigned, lag, 1030.0, 30) == [0]
    assert stats.idle_partitions(assigned, lag, 1031.0, 30) == []  # one tick per idle period
    assert stats.idle_partitions(assigned, lag, 1040.0, 30) == [1]
    lag[2] = 0
    assert stats.idle_partitions(assigned, lag, 1060.0, 30) == [0, 2]
    assert stats.idle_partitions(assigned, lag, 1070.0, 30) == [1]
    assert stats.idle_partitions([0], {0: 0}, 2000.0, 30) == [0]  # only the assigned ones


def test_ticks_round_trip_in_milliseconds_and_anything_else_is_no_tick() -> None:
    assert encode_tick(T0 + 0.123) == b"1795600800123"
    assert decode_tick(b"1795600800123") == 1_795_600_800_123 / 1000
    assert decode_tick(encode_tick(1.5)) == 1.5
    for value in (b"", b"-5", b"1.5", b" 15", b"soon", "١٢".encode(), b"9" * 16):
        assert decode_tick(value) is None, value


# The combiner.


def partial(
    source: str,
    offset: int,
    start: int,
    *,
    application_id: int = 322,
    sequence: int = 0,
    **figures: Any,
) -> StatsPartial:
    """A partial for the window starting at T0 + start."""
    return StatsPartial(
        application_id, T0 + start, T0 + start + 60, source, offset, sequence, Figures(**figures)
    )


def watermark(partition: int, through: int) -> StatsWatermark:
    return StatsWatermark(partition, T0 + through)


def figures_of(stats: WindowStats) -> Figures:
    return Figures(
        stats.sessions_created,
        stats.sessions_closed,
        stats.sessions_cancelled,
        stats.sessions_partially_returned,
        stats.revenue_closed,
        stats.returned_value,
        stats.abandoned_value,
        stats.coupons_applied,
        stats.events_applied,
    )


@dataclass
class Combiner:
    """A StatsCombiner on a fake table; each `feed` is one batch of partition 0."""

    partitions: int = 2
    settings: Settings = STATS
    table: FakeTable = field(default_factory=FakeTable)
    metrics: Metrics = field(default_factory=Metrics)
    offset: int = 0

    def __post_init__(self) -> None:
        self.combiner = StatsCombiner(
            self.settings, self.table, self.table, self.metrics, self.partitions, lambda _: 0
        )

    def feed(self, *values: StatsMessage | bytes | None) -> None:
        messages = []
        for value in values:
            encoded = value
            if isinstance(value, StatsPartial | StatsWatermark):
                encoded = encode_stats_record(value)
            messages.append(Message(PARTIALS, b"322", encoded, partition=0, offset=self.offset))
            self.offset += 1
        asyncio.run(self.combiner.handle_batch(messages))

    def published(self) -> list[WindowStats]:
        return [decode_window_stats(r.value) for r in self.table.producer.to(STATS.stats_topic)]

    def windows(
        self, application_id: int = 322, start: int = EARLIEST, stop: int = LATEST
    ) -> list[WindowStats]:
        return self.combiner.windows(application_id, start, stop)

    def dead_letters(self) -> list[tuple[str, str]]:
        found = []
        for record in self.table.producer.to(STATS.dlq_topic):
            rejection = decode_rejection(record.value)
            found.append((rejection.error.code, rejection.error.message))
        return found


def test_the_combiner_adds_up_the_partials_of_every_source() -> None:
    combiner = Combiner()
    combiner.feed(
        partial("i0", 5, 0, sessions_created=2, revenue_closed=money(0.1), events_applied=3),
        partial("i1", 9, 0, sessions_closed=1, revenue_closed=money(0.2), events_applied=1),
    )
    combiner.feed(
        partial("r0", 2, 0, coupons_applied=1, abandoned_value=money(19.99), events_applied=1),
        partial("i0", 6, 60, events_applied=4),
    )
    [first, second] = combiner.windows()
    assert (first.window_start, first.window_end, first.closed) == (at(0), at(60), False)
    assert figures_of(first) == Figures(
        sessions_created=2,
        sessions_closed=1,
        revenue_closed=Decimal("0.3"),
        abandoned_value=Decimal("19.99"),
        coupons_applied=1,
        events_applied=5,
    )
    assert (second.window_start, second.events_applied) == (at(60), 4)
    assert combiner.published() == []
    assert combiner.metrics.stats_windows_closed == 0


def test_a_window_closes_once_every_source_partition_has_passed_its_end() -> None:
    combiner = Combiner(partitions=3)
    combiner.feed(partial("i0", 1, 0, events_applied=1), watermark(0, 60), watermark(1, 120))
    assert combiner.published() == []  # partition 2 has sent nothing yet
    combiner.feed(watermark(2, 0))
    assert combiner.published() == []  # partition 2 has not reached the window's end
    assert combiner.windows()[0].closed is False
    combiner.feed(watermark(2, 60))
    [record] = combiner.table.producer.to(STATS.stats_topic)
    assert record.key == b"322"
    [stats] = combiner.published()
    assert (stats.application_id, stats.window_start, stats.window_end) == (322, at(0), at(60))
    assert (stats.closed, stats.events_applied) == (True, 1)
    assert combiner.windows() == [stats]
    assert combiner.metrics.stats_windows_closed == 1
    # A watermark never goes back.
    combiner.feed(watermark(0, 0))
    clock = decode_combiner_clock(combiner.table.rows[CLOCK_KEY])
    assert clock.closed == {0: T0 + 60, 1: T0 + 120, 2: T0 + 60}
    assert clock.emitted_through == T0 + 60


def test_a_window_is_published_once_however_many_watermarks_follow() -> None:
    combiner = Combiner()
    combiner.feed(
        partial("i0", 1, 0, events_applied=1),
        partial("i1", 1, 60, events_applied=2),
        watermark(0, 60),
        watermark(1, 60),
    )
    combiner.feed(watermark(0, 60), watermark(1, 60))  # the same again
    combiner.feed(watermark(0, 120), watermark(1, 90))  # not yet past [60, 120)'s end
    assert [s.window_start for s in combiner.published()] == [at(0)]
    combiner.feed(watermark(1, 120))
    combiner.feed(watermark(0, 600), watermark(1, 600))
    published = combiner.published()
    assert [(s.window_start, s.events_applied) for s in published] == [(at(0), 1), (at(60), 2)]
    assert all(s.closed for s in published)
    assert combiner.metrics.stats_windows_closed == 2
    assert not any(key.startswith("o") for key in combiner.table.rows)  # none left open


def test_a_partial_read_again_is_not_added_twice() -> None:
    combiner = Combiner()
    combiner.feed(
        partial("i0", 7, 0, sequence=1, events_applied=2),
        partial("i0", 7, 0, sequence=1, events_applied=2),  # the same, in the same batch
    )
    combiner.feed(partial("i0", 7, 0, sequence=1, events_applied=2))  # read again
    combiner.feed(partial("i0", 6, 0, sequence=3, events_applied=2))  # an earlier batch's
    combiner.feed(partial("i0", 7, 0, sequence=2, events_applied=5))  # the batch's next
    combiner.feed(partial("i1", 1, 0, events_applied=10))  # another source, its own offsets
    [window] = combiner.windows()
    assert window.events_applied == 17
    assert combiner.metrics.stats_partials_repeated == 3


def test_a_partial_for_a_window_already_closed_is_counted_as_late() -> None:
    combiner = Combiner(partitions=1)
    combiner.feed(partial("i0", 1, 0, events_applied=1), watermark(0, 60))
    # After a rebalance a source's stream time starts again below a closed window.
    combiner.feed(partial("i0", 2, 0, sessions_created=4, events_applied=4))
    assert combiner.metrics.stats_late_events == {"combiner": 4}
    [window] = combiner.windows()
    assert (window.closed, window.sessions_created, window.events_applied) == (True, 0, 1)
    # Behind a watermark in the same batch: late too, and no window is made for it.
    combiner.feed(watermark(0, 120), partial("i0", 3, 60, events_applied=2))
    assert combiner.metrics.stats_late_events == {"combiner": 6}
    assert [w.window_start for w in combiner.windows()] == [at(0)]
    assert len(combiner.published()) == 1


def test_windows_answers_an_application_s_open_and_closed_windows_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_stats, "_SCAN_LIMIT", 2)  # every scan takes several reads
    combiner = Combiner(partitions=1)
    starts = [120, -60, 0, 60, 180]
    combiner.feed(
        *(partial("i0", n, start, events_applied=n + 1) for n, start in enumerate(starts)),
        partial("i0", 9, 0, application_id=32, events_applied=1),
        partial("i0", 10, 0, application_id=3220, events_applied=1),
        watermark(0, 60),
    )
    windows = combiner.windows()
    assert [(w.window_start, w.closed, w.events_applied) for w in windows] == [
        (at(-60), True, 2),
        (at(0), True, 3),
        (at(60), False, 4),
        (at(120), False, 1),
        (at(180), False, 5),
    ]
    assert [w.window_start for w in combiner.windows(322, T0, T0 + 120)] == [at(0), at(60)]
    assert [w.window_start for w in combiner.windows(322, T0 + 1, T0 + 120)] == [at(60)]
    assert combiner.windows(322, T0 + 300, LATEST) == []
    assert [(w.application_id, w.window_start) for w in combiner.windows(32)] == [(32, at(0))]
    assert combiner.windows(7) == []
    assert {s.window_start for s in combiner.published()} == {at(-60), at(0)}


def test_closed_windows_leave_once_the_retention_has_passed_after_they_closed() -> None:
    combiner = Combiner(partitions=1)  # retention: 10 minutes
    combiner.feed(
        partial("i0", 1, 0, events_applied=1),
        partial("i0", 2, 60, events_applied=1),
        watermark(0, 60),
    )
    combiner.feed(partial("i0", 3, 660, events_applied=1), watermark(0, 600))
    # [0, 60) closed 540 s ago, [60, 120) just now: both kept; [660, 720) is open.
    assert [(w.window_start, w.closed) for w in combiner.windows()] == [
        (at(0), True),
        (at(60), True),
        (at(660), False),
    ]
    combiner.feed(watermark(0, 660))
    assert [w.window_start for w in combiner.windows()] == [at(60), at(660)]
    rows = combiner.table.rows
    assert window_key(322, T0, T0 + 60) not in rows
    assert closed_key(T0 + 60, 322, T0) not in rows
    assert closed_key(T0 + 120, 322, T0 + 60) in rows
    assert open_key(T0 + 720, 322, T0 + 660) in rows
    combiner.feed(watermark(0, 720))
    assert [(w.window_start, w.closed) for w in combiner.windows()] == [(at(660), True)]
    assert len(combiner.published()) == 3  # each published once, before it left

    forever = Combiner(partitions=1, settings=replace(STATS, stats_retention=None))
    forever.feed(partial("i0", 1, 0, events_applied=1), watermark(0, 60))
    forever.feed(watermark(0, 10**9))
    assert [(w.window_start, w.closed) for w in forever.windows()] == [(at(0), True)]


def test_a_record_of_the_partials_topic_that_does_not_decode_is_dead_lettered() -> None:
    combiner = Combiner(partitions=1)
    combiner.feed(
        b"not msgpack \xff", None, partial("i0", 1, 0, events_applied=3), watermark(0, 60)
    )
    dead = combiner.dead_letters()
    assert [code for code, _ in dead] == ["invalid_internal_record"] * 2
    assert all(text.startswith("Not a statistics record") for _, text in dead)
    [first, _] = combiner.table.producer.to(STATS.dlq_topic)
    source = decode_rejection(first.value).source
    assert (source.topic, source.partition, source.offset) == (PARTIALS, 0, 0)
    assert combiner.metrics.rejected == {"invalid_internal_record": 2}
    # The batch's other records went on.
    [stats] = combiner.published()
    assert stats.events_applied == 3


def test_a_watermark_of_a_partition_out_of_range_is_dead_lettered() -> None:
    combiner = Combiner(partitions=2)
    combiner.feed(
        partial("i0", 1, 0, events_applied=1),
        watermark(0, 60),
        watermark(2, 60),
        watermark(-1, 60),
    )
    dead = combiner.dead_letters()
    assert [code for code, _ in dead] == ["invalid_internal_record"] * 2
    assert "partition 2," in dead[0][1]
    assert "partition -1," in dead[1][1]
    assert combiner.published() == []  # partition 1 has sent nothing
    assert decode_combiner_clock(combiner.table.rows[CLOCK_KEY]).closed == {0: T0 + 60}
    combiner.feed(watermark(1, 60))
    assert [s.window_start for s in combiner.published()] == [at(0)]


# The session agent with statistics on.


@dataclass
class Partition:
    """A SessionProcessor with a StatsSource on fakes; records of partition 3."""

    settings: Settings = STATS
    table: FakeTable = field(default_factory=FakeTable)
    metrics: Metrics = field(default_factory=Metrics)
    offset: int = 0
    with_stats: bool = True

    def __post_init__(self) -> None:
        self.source = StatsSource(self.settings, self.metrics, partitions=3)
        stats = self.source if self.with_stats else None
        self.processor = SessionProcessor(
            self.settings, self.table, self.table, self.metrics, stats=stats
        )

    def feed(self, records: Sequence[tuple[str, bytes | None, bytes | None, float]]) -> None:
        """One batch of (topic, key, value, record timestamp relative to T0)."""
        messages = []
        for topic, key, value, seconds in records:
            messages.append(Message(topic, key, value, 3, self.offset, timestamp=T0 + seconds))
            self.offset += 1
        asyncio.run(self.processor.handle_batch(messages))

    def sent(self, topic: str) -> list[Any]:
        return self.table.producer.to(topic)


def keyed(event: dict[str, Any]) -> tuple[str, bytes, bytes, float]:
    """An input record of the event, keyed by its session, stamped at its occurredAt."""
    seconds = datetime.fromisoformat(event["occurredAt"]).timestamp() - T0
    return INPUT, event["integrationId"].encode(), raw(event), seconds


def test_a_session_agent_with_statistics_sends_the_contributions_of_its_events() -> None:
    events = [
        event_at("e1", 5, cart_items=CART, coupon="C1"),
        event_at("e2", 30, session="s2", application_id=323, cart_items=CART),
        event_at("e3", 59, coupon="C2"),
        event_at("e4", 61, state="closed"),
        {**give_back("e5", [{"position": 1, "quantity": 1}], stamp(62)), "integrationId": "s1"},
        event_at("e6", 70, session="s2", application_id=323, state="cancelled"),
        event_at("e7", 75, coupon="C3"),  # refused: the session is not open
    ]
    partition = Partition()
    partition.feed([keyed(e) for e in events[:3]])
    partition.feed([keyed(e) for e in events[3:]])

    # The same events through the core alone, each one's contribution to its window.
    expected: dict[tuple[int, int], Figures] = {}
    states: dict[str, StoredSession] = {}
    for event_fields in events:
        event = decoded(event_fields)
        before = states.get(event.integration_id)
        result = apply_event(before, event, None)
        if not isinstance(result, Applied):
            continue
        states[event.integration_id] = result.stored
        window = (event.application_id, T0 + int(event.occurred_at.timestamp() - T0) // 60 * 60)
        figures = expected.setdefault(window, Figures())
        figures.add(
            contribution(None if before is None else before.session, result.stored.session, event)
        )

    partials = partials_in(partition.sent(PARTIALS))
    found: dict[tuple[int, int], Figures] = {}
    for sent in partials:
        found.setdefault((sent.application_id, sent.window_start), Figures()).add(sent.figures)
    assert found == expected
    assert found[(322, T0 + 60)] == Figures(
        sessions_closed=1,
        sessions_partially_returned=1,
        revenue_closed=Decimal(43),
        returned_value=Decimal("6.5"),
        events_applied=2,
    )
    assert found[(323, T0 + 60)].abandoned_value == Decimal(43)
    # One partial per (application, window) and batch, ordered by (offset, sequence).
    assert [(p.source, p.offset, p.sequence) for p in partials] == [
        ("i3", 2, 0),
        ("i3", 2, 1),
        ("i3", 6, 0),
        ("i3", 6, 1),
    ]
    assert partition.metrics.rejected == {"session_locked": 1}
    # The first batch started the partition's clock (stream time 59: [-60, 0) is closed), the
    # second did not move what it closes (stream time 70): one watermark.
    assert watermarks_in(partition.sent(PARTIALS)) == [(n, StatsWatermark(3, T0)) for n in range(3)]
    assert 3 in partition.source.last_input


def test_a_late_event_is_applied_but_left_out_of_the_statistics() -> None:
    partition = Partition()
    partition.feed([keyed(event_at("e1", 100, session="s2")), keyed(event_at("e2", 10))])
    [partial_sent] = partials_in(partition.sent(PARTIALS))
    assert (partial_sent.window_start, partial_sent.figures.events_applied) == (T0 + 60, 1)
    assert partition.metrics.stats_late_events == {"source": 1}
    assert partition.metrics.applied == 2  # the session still changed
    assert len(partition.sent(STATS.output_topic)) == 2


def test_a_tick_closes_windows_and_a_value_that_is_no_tick_is_dead_lettered() -> None:
    partition = Partition()
    partition.feed([keyed(event_at("e1", 10))])
    partition.source.last_input[3] = -1.0
    partition.table.producer.sent.clear()
    partition.feed([(TICKS, None, value, 20) for value in (b"soon", b"", b"-5", b"1.5", None)])
    dead = partition.sent(STATS.dlq_topic)
    assert [decode_rejection(r.value).error.code for r in dead] == ["invalid_internal_record"] * 5
    assert decode_rejection(dead[0].value).error.message == "Not a statistics tick"
    assert partition.sent(PARTIALS) == []  # stream time did not move
    partition.feed([(TICKS, None, encode_tick(T0 + 200), 200)])
    assert watermarks_in(partition.sent(PARTIALS)) == [
        (n, StatsWatermark(3, T0 + 120)) for n in range(3)
    ]
    assert partition.source.last_input[3] == -1.0  # a tick is no input
    partition.feed([keyed(event_at("e2", 100))])
    assert partition.metrics.stats_late_events == {"source": 1}


def test_a_tick_is_dead_lettered_when_statistics_are_off() -> None:
    partition = Partition(with_stats=False)
    partition.feed([(TICKS, None, encode_tick(T0 + 200), 200)])
    [dead] = partition.sent(STATS.dlq_topic)
    assert decode_rejection(dead.value).error.code == "invalid_internal_record"
    assert partition.sent(PARTIALS) == []


# Windows that start before year 1: 0001-01-01T00:00:00Z, the earliest occurredAt there is, is
# in a window of 7 days (aligned on the epoch) that starts in year 0, which a datetime cannot hold.

WEEKLY = replace(STATS, stats_window=7 * 86400)
YEAR_ONE = "0001-01-01T00:00:00Z"


def test_a_late_event_in_a_window_that_starts_before_year_one_is_left_out_like_any_other() -> None:
    partition = Partition(settings=WEEKLY)
    partition.feed([keyed(event_at("e1", 100))])
    old = {**update("e2", YEAR_ONE, coupon="C1"), "integrationId": "s1"}
    partition.feed([(INPUT, b"s1", raw(old), 100)])
    assert decode_stored(partition.table.rows["s1"]).session.coupon == "C1"  # applied
    assert partition.sent(STATS.dlq_topic) == []
    assert partition.metrics.stats_late_events == {"source": 1}
    assert partition.metrics.applied == 2
    snapshots = [decode_customer_session(r.value) for r in partition.sent(STATS.output_topic)]
    assert [s.coupon for s in snapshots] == ["", "C1"]


def test_a_window_that_starts_before_year_one_is_not_counted_and_not_combined() -> None:
    # A week-long window of an event on the first day of year 1 starts before it: no record
    # could name it. The source leaves the event out (as late); the combiner refuses such a
    # partial and goes on with the batch.
    stats = StatsSource(WEEKLY, Metrics(), partitions=1)
    for event_id, occurred in (("y1", YEAR_ONE), ("y2", stamp(0))):
        event = decoded({**update(event_id, occurred), "integrationId": event_id})
        result = apply_event(None, event, None)
        assert isinstance(result, Applied), result
        count(stats, (None, result.stored.session, event), partition=0)
    assert stats.metrics.stats_late_events == {"source": 1}
    records = ended(stats, Message(INPUT, b"y2", b"", partition=0, offset=1))
    assert len(partials_in(records)) == 1
    combiner = Combiner(partitions=1, settings=WEEKLY)
    week = 7 * 86400
    forged = StatsPartial(322, FIRST_WINDOW_START - 86400, FIRST_WINDOW_START - 86400 + week,
                          "i0", 0, 0, Figures(events_applied=1))  # fmt: skip
    combiner.feed(forged, *(r.value for r in records))
    assert [code for code, _ in combiner.dead_letters()] == ["invalid_internal_record"]
    assert [(w.events_applied, w.closed) for w in combiner.windows()] == [(1, False)]


def test_windows_of_two_lengths_that_start_together_are_kept_apart() -> None:
    # The window length changed between two workers' restarts: both kinds are counted and
    # published, each with its own end.
    combiner = Combiner(partitions=1)
    longer = StatsPartial(322, T0, T0 + 300, "i0", 1, 0, Figures(events_applied=5))
    combiner.feed(partial("i0", 0, 0, events_applied=2), longer, watermark(0, 300))
    published = sorted(
        (s.window_end - s.window_start, s.events_applied) for s in combiner.published()
    )
    assert published == [(timedelta(seconds=60), 2), (timedelta(seconds=300), 5)]


def test_a_watermark_far_ahead_of_its_record_is_dead_lettered() -> None:
    combiner = Combiner(partitions=1)
    messages = [partial("i0", 0, 0, events_applied=1), watermark(0, 10**8)]
    combiner.feed(*messages)  # the fake stamps its records now: T0 + 10**8 s is years ahead
    assert [code for code, _ in combiner.dead_letters()] == ["invalid_internal_record"]
    assert combiner.published() == []
    assert [w.closed for w in combiner.windows()] == [False]


@pytest.mark.parametrize("text", ["042", "0", "+1", "1.0", "99999999999999999999", "٣"])
def test_an_application_id_that_is_not_in_its_canonical_form_is_refused(text: str) -> None:
    # The request is routed by the text's hash and the windows are kept under the number's.
    with pytest.raises(worker_stats.StatsQueryError):
        worker_stats.stats_query(text, None, None)
    assert worker_stats.stats_query("42", "60", None)[:2] == (42, 60)
