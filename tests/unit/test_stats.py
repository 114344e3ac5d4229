"""Windowed statistics, the pure core (contract section 11): what each applied event adds to
its window, when a window closes, the combiner's table keys and clock, and the codecs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dev.harness.replay import InputRecord, replay
from dev.harness.stats import ExpectedStats, expected_stats
from stream_app.domain import Applied, CustomerSession, Event, StoredSession, apply_event
from stream_app.domain.stats import (
    CombinerClock,
    Figures,
    StatsPartial,
    StatsWatermark,
    StoredWindow,
    Windowing,
    WindowStats,
    closed_key,
    contribution,
    decode_combiner_clock,
    decode_stats_message,
    decode_window,
    decode_window_stats,
    encode_stats_record,
    encode_window_stats,
    index_stop,
    indexed_window,
    money,
    open_key,
    record_event,
    time_key,
    window_key,
    window_of_key,
    window_range,
    window_stats,
)
from stream_app.worker.metrics import Metrics
from stream_app.worker.sessions import SessionProcessor
from stream_app.worker.stats import StatsSource

from .builders import CART, decoded, give_back, raw, update
from .test_processors import SETTINGS, FakeTable, Message

PROPERTIES = settings(max_examples=100, deadline=None)
#: 2026-11-25T10:00:00Z: a multiple of every window size used here.
T0 = 1_795_600_800
WINDOWING = Windowing(size=60, grace=30)
#: Epoch times time_key can hold (12 digits): back to year -1200, up to year 30,000.
KEY_TIMES = st.integers(min_value=-(10**11), max_value=9 * 10**11 - 1)
#: Window starts whose windows (up to 300 s long here) also end within what a key can hold.
WINDOW_STARTS = st.integers(min_value=-(10**11), max_value=9 * 10**11 - 1 - 300)
APPLICATIONS = st.integers(min_value=1, max_value=2**63 - 1)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def stamp(seconds: float) -> str:
    return at(seconds).isoformat()


Step = tuple[CustomerSession | None, CustomerSession, Event]


def applied(events: list[dict[str, Any]], state: StoredSession | None = None) -> list[Step]:
    """Each event applied in turn with the real core: (session before, after, event)."""
    steps: list[Step] = []
    for event_fields in events:
        event = decoded(event_fields)
        result = apply_event(state, event, None)
        assert isinstance(result, Applied), result
        steps.append((None if state is None else state.session, result.stored.session, event))
        state = result.stored
    return steps


def counted(events: list[dict[str, Any]]) -> Figures:
    figures = Figures()
    for before, after, event in applied(events):
        record_event(figures, before, after, event)
    return figures


# What each applied event counts.


def test_a_session_created_closed_returned_twice_then_cancelled() -> None:
    figures = counted(
        [
            update("e1", cart_items=CART),  # 3 x 10.0 + 2 x (5.5 + 1.0) = 43.0
            update("e2", state="closed"),
            give_back("e3", [{"position": 0, "quantity": 1}]),  # 43.0 -> 33.0
            give_back("e4", [{"position": 1, "quantity": 2}]),  # 33.0 -> 20.0
            update("e5", state="cancelled"),
        ]
    )
    assert figures == Figures(
        sessions_created=1,
        sessions_closed=1,
        sessions_cancelled=1,
        # Two returns, one transition into partially_returned.
        sessions_partially_returned=1,
        revenue_closed=Decimal("43.0"),
        returned_value=Decimal("23.0"),
        # Cancelled from partially_returned: not an abandoned cart.
        abandoned_value=Decimal(0),
        coupons_applied=0,
        events_applied=5,
    )


def test_an_open_session_cancelled_is_an_abandoned_cart() -> None:
    figures = counted(
        [update("e1", cart_items=CART), update("e2", coupon=""), update("e3", state="cancelled")]
    )
    assert figures == Figures(
        sessions_created=1, sessions_cancelled=1, abandoned_value=Decimal("43.0"), events_applied=3
    )


def test_a_closed_session_cancelled_is_not_an_abandoned_cart() -> None:
    figures = counted(
        [
            update("e1", cart_items=CART),
            update("e2", state="closed"),
            update("e3", state="cancelled"),
        ]
    )
    assert (figures.sessions_cancelled, figures.abandoned_value) == (1, Decimal(0))
    assert figures.revenue_closed == Decimal("43.0")


def test_a_session_created_closed_counts_its_creation_and_its_revenue() -> None:
    figures = counted([update("e1", cart_items=CART, state="closed")])
    assert figures == Figures(
        sessions_created=1, sessions_closed=1, revenue_closed=Decimal(43), events_applied=1
    )


def test_the_revenue_of_a_closing_update_that_changes_the_cart_is_the_new_total() -> None:
    cart = [{"sku": "A", "quantity": 2, "price": 0.1}, {"sku": "B", "quantity": 1, "price": 0.2}]
    steps = applied([update("e1", cart_items=CART), update("e2", cart_items=cart, state="closed")])
    assert contribution(*steps[1]) == Figures(
        sessions_closed=1, revenue_closed=Decimal("0.4"), events_applied=1
    )


def test_updates_that_change_no_state_count_only_as_applied_events() -> None:
    steps = applied([update("e1"), update("e2", cart_items=CART), update("e3", state="open")])
    assert [contribution(*step) for step in steps[1:]] == [Figures(events_applied=1)] * 2
    assert contribution(*steps[0]) == Figures(sessions_created=1, events_applied=1)


def test_a_return_without_quantity_counts_every_remaining_unit_of_its_line() -> None:
    steps = applied(
        [update("e1", cart_items=CART, state="closed"), give_back("e2", [{"position": 1}])]
    )
    assert contribution(*steps[1]) == Figures(
        sessions_partially_returned=1, returned_value=Decimal("13.0"), events_applied=1
    )


def test_a_coupon_counts_when_it_is_set_non_empty_and_different_from_the_previous_one() -> None:
    steps = applied(
        [
            update("e1", coupon="C1"),  # set at creation: counts
            update("e2", coupon="C1"),  # the same again
            update("e3", cart_items=CART),  # untouched
            update("e4", coupon=""),  # removed
            update("e5", coupon="C1"),  # set again after none: counts
            update("e6", coupon="C2"),  # changed: counts
            update("e7", state="closed"),  # a transition keeps the coupon
            give_back("e8", [{"position": 0, "quantity": 1}]),
        ]
    )
    assert [contribution(*step).coupons_applied for step in steps] == [1, 0, 0, 0, 1, 1, 0, 0]
    assert counted([update("e1"), update("e2", coupon="")]).coupons_applied == 0


def test_record_event_adds_to_the_figures_it_is_given() -> None:
    steps = applied([update("e1", cart_items=CART), update("e2", state="closed")])
    figures = Figures(sessions_created=5, revenue_closed=Decimal("0.1"), events_applied=7)
    for step in steps:
        record_event(figures, *step)
    assert figures == Figures(
        sessions_created=6, sessions_closed=1, revenue_closed=Decimal("43.1"), events_applied=9
    )


def test_money_is_the_shortest_decimal_text_of_a_total() -> None:
    assert money(0.1) == Decimal("0.1")
    assert money(0.1) + money(0.2) == Decimal("0.3")
    assert money(19.99) == Decimal("19.99")
    assert money(1e18) == Decimal("1000000000000000000")


# Windows and their clock.


def test_a_window_holds_its_start_but_not_its_end() -> None:
    assert WINDOWING.start_of(at(0)) == T0
    assert WINDOWING.start_of(at(59.999999)) == T0
    assert WINDOWING.start_of(at(60)) == T0 + 60
    assert WINDOWING.start_of(at(-0.000001)) == T0 - 60
    # Offsets other than UTC name the same instant.
    assert WINDOWING.start_of(datetime.fromisoformat("2026-11-25T11:00:59+01:00")) == T0


def test_windows_before_the_epoch_are_aligned_like_the_others() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert WINDOWING.start_of(epoch) == 0
    assert WINDOWING.start_of(epoch - timedelta(microseconds=1)) == -60
    assert WINDOWING.start_of(epoch - timedelta(seconds=60)) == -60
    assert WINDOWING.start_of(epoch - timedelta(seconds=61)) == -120
    assert WINDOWING.closed_through(-1) == -60  # floor((-1 - 30) / 60) = -1
    assert WINDOWING.closed_through(-30) == -60  # [-120, -60) ended 30 s ago
    assert WINDOWING.closed_through(-30.001) == -120
    assert WINDOWING.closed_through(30) == 0
    assert WINDOWING.is_late(-60, WINDOWING.closed_through(30))
    assert not WINDOWING.is_late(-60, WINDOWING.closed_through(29.999))


def test_a_window_closes_exactly_when_stream_time_reaches_its_end_plus_the_grace() -> None:
    start = T0
    end = start + WINDOWING.size
    assert WINDOWING.closed_through(end + 30) == end
    assert WINDOWING.is_late(start, WINDOWING.closed_through(end + 30))
    assert not WINDOWING.is_late(start, WINDOWING.closed_through(end + 29.999))
    # The next window is still open.
    assert not WINDOWING.is_late(end, WINDOWING.closed_through(end + 30))
    no_grace = Windowing(size=60, grace=0)
    assert no_grace.is_late(start, no_grace.closed_through(end))
    assert not no_grace.is_late(start, no_grace.closed_through(end - 0.001))


@PROPERTIES
@given(
    st.integers(1, 86_400),
    st.integers(0, 3_600),
    st.integers(-(10**13), 10**13),
    st.integers(-(10**13), 10**13),
)
def test_an_event_is_late_exactly_when_stream_time_reached_its_window_end_plus_grace(
    size: int, grace: int, event_ms: int, stream_ms: int
) -> None:
    windowing = Windowing(size, grace)
    event_time = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=event_ms)
    start = windowing.start_of(event_time)
    assert start % size == 0
    assert start <= event_ms / 1000 < start + size
    closed = windowing.closed_through(stream_ms / 1000)
    assert closed % size == 0
    assert windowing.is_late(start, closed) == (stream_ms >= (start + size + grace) * 1000)


# Keys of the combiner's table.


@given(KEY_TIMES, KEY_TIMES)
def test_time_keys_sort_as_times_do(a: int, b: int) -> None:
    assert len(time_key(a)) == len(time_key(b)) == 12
    assert (time_key(a) < time_key(b)) == (a < b)
    assert (time_key(a) == time_key(b)) == (a == b)


@given(APPLICATIONS, WINDOW_STARTS, WINDOW_STARTS)
def test_window_keys_of_an_application_sort_by_start_and_give_their_start_back(
    application_id: int, a: int, b: int
) -> None:
    assert window_of_key(window_key(application_id, a, a + 60)) == a
    assert (window_key(application_id, a, a + 60) < window_key(application_id, b, b + 1)) == (a < b)
    # Windows of two lengths that start together are two keys, both of that start.
    assert window_key(application_id, a, a + 60) != window_key(application_id, a, a + 300)


@given(APPLICATIONS, APPLICATIONS, KEY_TIMES, KEY_TIMES, WINDOW_STARTS)
def test_a_window_range_holds_the_application_s_windows_starting_in_it_and_no_others(
    application_id: int, other: int, start: int, stop: int, window: int
) -> None:
    first, end = window_range(application_id, start, stop)
    key = window_key(application_id, window, window + 60)
    assert (first <= key < end) == (start <= window < stop)
    if other != application_id:
        assert not first <= window_key(other, window, window + 60) < end


def test_a_window_range_leaves_out_applications_whose_id_extends_its_own() -> None:
    first, end = window_range(32, -(10**11), 9 * 10**11 - 1)
    inside = [window_key(app, T0, T0 + 60) for app in (3, 32, 320, 322, 33, 2)]
    assert [first <= key < end for key in inside] == [False, True, False, False, False, False]


@given(KEY_TIMES, APPLICATIONS, KEY_TIMES)
def test_index_entries_give_back_their_window(end: int, application_id: int, start: int) -> None:
    window = (application_id, start, end)
    assert indexed_window(open_key(end, application_id, start)) == window
    assert indexed_window(closed_key(end, application_id, start)) == window


@given(KEY_TIMES, KEY_TIMES, APPLICATIONS, APPLICATIONS, KEY_TIMES, KEY_TIMES)
def test_index_entries_sort_by_window_end_whatever_the_application(
    end_a: int, end_b: int, app_a: int, app_b: int, start_a: int, start_b: int
) -> None:
    if end_a < end_b:
        assert open_key(end_a, app_a, start_a) < open_key(end_b, app_b, start_b)
        assert closed_key(end_a, app_a, start_a) < closed_key(end_b, app_b, start_b)


@given(KEY_TIMES, KEY_TIMES.filter(lambda t: t < 9 * 10**11 - 1), APPLICATIONS, KEY_TIMES)
def test_index_stop_separates_the_windows_ending_at_or_before_a_time(
    end: int, through: int, application_id: int, start: int
) -> None:
    for prefix, key in (("o", open_key), ("c", closed_key)):
        entry = key(end, application_id, start)
        assert (entry < index_stop(prefix, through)) == (end <= through)
        assert entry >= prefix  # a scan from the bare prefix finds it
    # Open and closed entries do not mix.
    assert open_key(end, application_id, start) > index_stop("c", through)
    assert closed_key(end, application_id, start) < "o"


# Sums: the same whatever the grouping and order.

#: Totals as the core makes them: finite, >= 0, rounded to 10 decimals (pricing.cart_total).
TOTALS = st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 10))
CONTRIBUTIONS = st.builds(
    lambda counts, revenue, returned, abandoned: Figures(
        sessions_created=counts[0],
        sessions_closed=counts[1],
        sessions_cancelled=counts[2],
        sessions_partially_returned=counts[3],
        revenue_closed=money(revenue),
        returned_value=money(returned),
        abandoned_value=money(abandoned),
        coupons_applied=counts[4],
        events_applied=counts[5],
    ),
    st.tuples(*[st.integers(0, 3)] * 6),
    TOTALS,
    TOTALS,
    TOTALS,
)
SUMS = ("revenue_closed", "returned_value", "abandoned_value")


def total_of(parts: list[Figures]) -> Figures:
    figures = Figures()
    for part in parts:
        figures.add(part)
    return figures


@PROPERTIES
@given(st.lists(CONTRIBUTIONS, max_size=15), st.data())
def test_figures_add_up_to_the_same_whatever_the_grouping_and_order(
    parts: list[Figures], data: st.DataObject
) -> None:
    straight = total_of(parts)
    order = data.draw(st.permutations(range(len(parts))))
    shuffled = [parts[i] for i in order]
    cuts = data.draw(st.lists(st.integers(0, len(parts)), max_size=4))
    bounds = sorted({0, len(parts), *cuts})
    groups = [total_of(shuffled[a:b]) for a, b in pairwise(bounds)]
    assert total_of(groups[::-1]) == straight
    # ... and the sums are exact.
    for name in SUMS:
        exact = sum((Fraction(getattr(part, name)) for part in parts), Fraction(0))
        assert Fraction(getattr(straight, name)) == exact
    assert straight.events_applied == sum(part.events_applied for part in parts)


def closing(event_id: str, price: float) -> dict[str, Any]:
    """A session created closed, its cart one unit at `price`."""
    cart = [{"sku": "A", "quantity": 1, "price": price}]
    return update(event_id, integration_id=event_id, cart_items=cart, state="closed")


def test_the_revenue_of_sessions_far_apart_in_total_does_not_depend_on_their_order() -> None:
    # Valid totals (finite, >= 0): 1e18 and 4e-10. Exactly: 1000000000000000000.0000000008.
    [big], [small], [tiny] = (
        applied([closing(name, price)])
        for name, price in (("s1", 1e18), ("s2", 4e-10), ("s3", 4e-10))
    )
    parts = [contribution(*step) for step in (big, small, tiny)]
    exact = Decimal("1000000000000000000.0000000008")
    assert total_of(parts).revenue_closed == exact  # big first: 1000000000000000000
    assert total_of(parts[::-1]).revenue_closed == exact


# The combiner's clock.


def test_nothing_is_closable_until_every_source_partition_has_sent_a_watermark() -> None:
    clock = CombinerClock()
    assert clock.closable(3) is None
    clock.closed.update({0: T0, 2: T0 + 60})
    assert clock.closable(3) is None
    clock.closed[1] = T0 - 120
    assert clock.closable(3) == T0 - 120
    clock.closed[1] = T0 + 600
    assert clock.closable(3) == T0
    assert CombinerClock(closed={0: -120, 1: -60}).closable(2) == -120


def partial(source: str, offset: int, sequence: int, events: int = 1) -> StatsPartial:
    return StatsPartial(322, T0, T0 + 60, source, offset, sequence, Figures(events_applied=events))


def test_a_partial_is_new_only_after_the_last_one_added_from_its_source() -> None:
    clock = CombinerClock()
    assert clock.is_new(partial("i3", 10, 1))
    assert not clock.is_new(partial("i3", 10, 1))  # the same again
    assert not clock.is_new(partial("i3", 10, 0))  # an earlier one of the same batch
    assert not clock.is_new(partial("i3", 9, 5))  # from an earlier batch
    assert clock.is_new(partial("i3", 10, 2))  # the next one of the batch
    assert clock.is_new(partial("i3", 11, 0))  # the next batch
    # Each source has its own order: the re-keyed topic's offsets are not the input's.
    assert clock.is_new(partial("r3", 2, 0))
    assert clock.is_new(partial("i4", 0, 0))
    assert clock.added == {"i3": (11, 0), "r3": (2, 0), "i4": (0, 0)}
    # Stored and read back (msgpack), the clock still knows them.
    stored = decode_combiner_clock(encode_stats_record(clock))
    assert not stored.is_new(partial("i3", 11, 0))
    assert stored.is_new(partial("i3", 11, 1))


# Codecs.


def test_partials_and_watermarks_round_trip_on_the_partials_topic() -> None:
    figures = Figures(3, 1, 1, 1, Decimal("43.5"), Decimal("0.1"), Decimal("19.99"), 2, 9)
    sent = StatsPartial(322, -60, 0, "r7", 12345, 2, figures)
    assert decode_stats_message(encode_stats_record(sent)) == sent
    watermark = StatsWatermark(7, T0 - 60)
    assert decode_stats_message(encode_stats_record(watermark)) == watermark
    assert isinstance(decode_stats_message(encode_stats_record(watermark)), StatsWatermark)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        msgspec.msgpack.encode(["partial", 1]),
        msgspec.msgpack.encode([1, 2]),
        msgspec.msgpack.encode(["other", 1, 2]),
    ],
)
def test_a_record_that_is_no_statistics_message_does_not_decode(value: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_stats_message(value)


def test_stored_windows_and_clocks_round_trip() -> None:
    window = StoredWindow(T0 + 60, Figures(sessions_created=2, revenue_closed=Decimal("0.3")))
    assert decode_window(encode_stats_record(window)) == window
    closed = StoredWindow(0, Figures(), closed=True)
    assert decode_window(encode_stats_record(closed)) == closed
    clock = CombinerClock({0: T0, 1: -60}, {"i0": (5, 1)}, emitted_through=-60)
    assert decode_combiner_clock(encode_stats_record(clock)) == clock


def test_published_window_stats_carry_exact_sums_as_json_numbers() -> None:
    figures = Figures(
        sessions_created=2,
        revenue_closed=money(0.1) + money(0.2),
        returned_value=Decimal("1000000000000000000.0000000001"),
        abandoned_value=Decimal(0),
        events_applied=4,
    )
    stats = window_stats(322, -60, StoredWindow(0, figures, closed=True))
    assert stats.window_start == datetime(1969, 12, 31, 23, 59, tzinfo=UTC)
    assert stats.window_end == datetime(1970, 1, 1, tzinfo=UTC)
    assert (stats.application_id, stats.closed, stats.events_applied) == (322, True, 4)
    text = encode_window_stats(stats)
    assert b'"revenueClosed":0.3,' in text
    assert b'"returnedValue":1000000000000000000.0000000001,' in text
    document = json.loads(text, parse_float=Decimal)
    assert document["revenueClosed"] == Decimal("0.3")
    assert document["returnedValue"] == Decimal("1000000000000000000.0000000001")
    assert isinstance(document["abandonedValue"], int | Decimal)
    assert document["windowStart"] == "1969-12-31T23:59:00Z"
    assert decode_window_stats(text) == stats
    assert isinstance(decode_window_stats(text), WindowStats)


# The offline aggregation of the harness against the worker.

STATS_SETTINGS = replace(SETTINGS, stats_window=WINDOWING.size, stats_grace=WINDOWING.grace)
#: Sessions of each input partition (keyed records stay on their partition).
PARTITION_SESSIONS = {0: ("S1", "S2"), 1: ("S3",)}
BODIES: list[dict[str, Any]] = [
    {"type": "update", "session": {"cartItems": CART}},
    {"type": "update", "session": {"coupon": "C1"}},
    {"type": "update", "session": {"coupon": "C2"}},
    {"type": "update", "session": {"state": "closed"}},
    {"type": "update", "session": {"state": "cancelled"}},
    {"type": "return", "returnedCartItems": [{"position": 0, "quantity": 1}]},
]

#: (partition, key, record timestamp after T0, value): the events' occurredAt is the same time
#: unless said otherwise, so the worker's cap on stream time never applies.
Record = tuple[int, str, float, bytes]


def input_record(event_id: str, integration_id: str, seconds: float, body: dict[str, Any]) -> bytes:
    event = {
        "eventId": event_id,
        "integrationId": integration_id,
        "applicationId": 322,
        "occurredAt": stamp(seconds),
        **body,
    }
    return raw(event)


def worker_stats(
    batches: list[list[Record]],
) -> tuple[dict[tuple[int, int], Figures], int]:
    """The partials a SessionProcessor with statistics sends, summed per window; and its late
    events. A record (partition, key, seconds, value) is stamped at T0 + seconds."""
    table, metrics = FakeTable(), Metrics()
    source = StatsSource(STATS_SETTINGS, metrics, partitions=4)
    processor = SessionProcessor(STATS_SETTINGS, table, table, metrics, stats=source)
    offsets: dict[int, int] = {}

    async def run() -> None:
        for batch in batches:
            messages = []
            for partition, key, seconds, value in batch:
                offset = offsets[partition] = offsets.get(partition, -1) + 1
                messages.append(
                    Message(
                        STATS_SETTINGS.input_topic,
                        key.encode(),
                        value,
                        partition,
                        offset,
                        timestamp=T0 + seconds,
                    )
                )
            await processor.handle_batch(messages)

    asyncio.run(run())
    windows: dict[tuple[int, int], Figures] = {}
    for sent in table.producer.to(STATS_SETTINGS.stats_partials_topic):
        message = decode_stats_message(sent.value or b"")
        if isinstance(message, StatsPartial):
            key = (message.application_id, message.window_start)
            windows.setdefault(key, Figures()).add(message.figures)
    return windows, metrics.stats_late_events["source"]


def harness_stats(batches: list[list[Record]]) -> ExpectedStats:
    records, offsets = [], {}
    for batch in batches:
        for partition, key, seconds, value in batch:
            offset = offsets[partition] = offsets.get(partition, -1) + 1
            records.append(
                InputRecord(
                    STATS_SETTINGS.input_topic,
                    partition,
                    offset,
                    key.encode(),
                    value,
                    timestamp=T0 + seconds,
                )
            )
    return expected_stats(replay(records, answer_claims=True), WINDOWING)


def test_the_harness_and_the_worker_leave_out_the_same_late_events() -> None:
    def record(n: int, partition: int, session: str, seconds: float) -> Record:
        body = BODIES[0] if n < 2 else {"type": "update", "session": {"coupon": f"C{n}"}}
        return partition, session, seconds, input_record(f"e{n}", session, seconds, body)

    batches = [
        [record(0, 0, "S1", 10), record(1, 0, "S2", 100)],  # stream time 100: [0, 60) closed
        [record(2, 0, "S1", 10)],  # late
        [record(3, 0, "S2", 89), record(4, 0, "S1", 60)],  # [60, 120) is still open
        [record(5, 1, "S3", 10)],  # another partition: its own stream time
        [record(6, 0, "S2", 149.999), record(7, 0, "S2", 60)],  # open until 150
        [record(8, 0, "S2", 150), record(9, 0, "S1", 119)],  # closed at 150: late
    ]
    windows, late = worker_stats(batches)
    expected = harness_stats(batches)
    assert late == expected.late == 2
    assert windows == expected.windows
    assert windows[(322, T0)].events_applied == 2
    assert windows[(322, T0 + 60)].events_applied == 4
    assert windows[(322, T0 + 120)].events_applied == 2


@st.composite
def partition_streams(draw: st.DrawFn) -> list[list[Record]]:
    """Keyed events of two partitions at times around T0, in batches (a batch: one partition)."""
    batches: list[list[Record]] = []
    for partition, sessions in PARTITION_SESSIONS.items():
        count = draw(st.integers(0, 14))
        records: list[Record] = []
        for n in range(count):
            session = draw(st.sampled_from(sessions))
            seconds = draw(st.integers(-200, 400)) + draw(st.sampled_from([0, 0.5, 0.999]))
            body = draw(st.sampled_from(BODIES))
            value = input_record(f"e{partition}-{n}", session, seconds, body)
            records.append((partition, session, seconds, value))
        cuts = draw(st.lists(st.integers(1, max(count - 1, 1)), max_size=4))
        bounds = sorted({0, count, *(c for c in cuts if c < count)})
        batches.extend(records[a:b] for a, b in pairwise(bounds))
    return batches


@PROPERTIES
@given(partition_streams())
def test_the_harness_counts_what_the_worker_counts_and_marks_late_what_it_leaves_out(
    batches: list[list[Record]],
) -> None:
    windows, late = worker_stats(batches)
    expected = harness_stats(batches)
    assert late == expected.late
    assert windows == expected.windows


def test_the_harness_agrees_with_the_worker_on_an_event_far_ahead_of_its_record() -> None:
    batches = [
        # Written at T0, the event says T0 + 2 h: the worker's stream time stops at T0 + 1 h.
        [(0, "S1", 0, input_record("e1", "S1", 7200, BODIES[0]))],
        # [T0 + 90 min, + 1 min) is open for the worker, closed for the harness.
        [(0, "S2", 5400, input_record("e2", "S2", 5400, BODIES[0]))],
    ]
    windows, late = worker_stats(batches)
    assert late == 0
    expected = harness_stats(batches)
    assert (expected.late, expected.windows) == (late, windows)


def test_published_sums_are_plain_digits_however_large() -> None:
    figures = Figures(revenue_closed=money(1e16) + money(1e16), returned_value=money(1e-3))
    window = StoredWindow(T0 + 60, figures, closed=True)
    text = encode_window_stats(window_stats(322, T0, window))
    assert b'"revenueClosed":20000000000000000,' in text
    assert b'"returnedValue":0.001,' in text
