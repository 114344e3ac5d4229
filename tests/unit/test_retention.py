"""Retention (contract section 10): which stored sessions leave the table, and when."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stream_app.domain import ProfileVerdict, decode_stored, encode_json, encode_verdict
from stream_app.domain.retention import (
    Retention,
    SessionClock,
    clock_of,
    due_before,
    index_key,
    is_expired,
)
from stream_app.worker.expiry import (
    MAX_EVENT_TIME_AHEAD,
    SWEEP_ENTRIES_PER_BATCH,
    SWEEP_SHARE,
    Expiry,
)
from stream_app.worker.sessions import SessionProcessor

from .builders import raw, update
from .test_processors import INPUT, SETTINGS, FakeTable, Message, Sessions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = Retention(final=timedelta(days=7), closed=timedelta(days=90), idle=timedelta(days=30))


def test_each_state_has_its_own_retention_counted_from_the_last_event() -> None:
    for state, period in (("cancelled", 7), ("closed", 90), ("partially_returned", 90),
                          ("open", 30)):  # fmt: skip
        clock = SessionClock(state, T0)  # type: ignore[arg-type]
        assert not is_expired(clock, T0 + timedelta(days=period), RULES), state
        assert is_expired(clock, T0 + timedelta(days=period, seconds=1), RULES), state


def test_forever_keeps_a_state_and_no_rule_means_retention_is_off() -> None:
    keep_open = replace(RULES, idle=None)
    assert not is_expired(SessionClock("open", T0), T0 + timedelta(days=10_000), keep_open)
    assert is_expired(SessionClock("cancelled", T0), T0 + timedelta(days=8), keep_open)
    assert keep_open.enabled
    assert not Retention(None, None, None).enabled


STATES = st.sampled_from(["open", "closed", "partially_returned", "cancelled"])
MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(STATES, MOMENTS, MOMENTS)
def test_an_index_entry_below_its_due_key_is_always_an_expired_session(
    state: str, updated: datetime, stream_time: datetime
) -> None:
    clock = SessionClock(state, updated)  # type: ignore[arg-type]
    entry = index_key("s-1", clock, RULES)
    due = due_before(state, stream_time, RULES)  # type: ignore[arg-type]
    assert entry is not None
    assert due is not None
    if entry < due:
        assert is_expired(clock, stream_time, RULES)
    # ... and it is due at most 1/64 of its period after it expired.
    period = RULES.period(state)  # type: ignore[arg-type]
    assert period is not None
    later = updated + period + period / 64 + timedelta(seconds=1)
    assert entry < due_before(state, later, RULES)  # type: ignore[arg-type,operator]


@given(STATES, MOMENTS, MOMENTS)
def test_index_entries_of_a_state_sort_by_last_activity(
    state: str, first: datetime, second: datetime
) -> None:
    one = index_key("b", SessionClock(state, min(first, second)), RULES)  # type: ignore[arg-type]
    two = index_key("a", SessionClock(state, max(first, second)), RULES)  # type: ignore[arg-type]
    assert one is not None
    assert two is not None
    assert one[:13] <= two[:13]


def test_held_and_kept_for_ever_sessions_have_no_index_entry() -> None:
    assert index_key("s", SessionClock("closed", T0, held=True), RULES) is None
    assert index_key("s", SessionClock("open", T0), replace(RULES, idle=None)) is None


def _at(day: float) -> str:
    return (T0 + timedelta(days=day)).isoformat()


def _event(
    event_id: str, integration_id: str = "s1", day: float = 0, state: str | None = None
) -> bytes:
    session = {} if state is None else {"state": state}
    event = update(event_id, _at(day), **session)
    return raw({**event, "integrationId": integration_id, "applicationId": 322})


class Partition:
    """One SessionProcessor with its Expiry on fakes (state survives between batches)."""

    def __init__(self, tombstones: bool = False, clock: Callable[[], float] | None = None) -> None:
        self.sessions = Sessions(
            settings=replace(SETTINGS, retention_snapshot_tombstones=tombstones)
        )
        self.index = FakeTable()
        # By default a clock that never moves: the sweep never exceeds its share of the time.
        self.expiry = Expiry(
            self.sessions.settings,
            self.sessions.table,
            self.index,
            self.index,
            self.sessions.metrics,
            clock=clock or (lambda: 0.0),
        )
        self.processor = SessionProcessor(
            self.sessions.settings,
            self.sessions.table,
            self.sessions.table,
            self.sessions.metrics,
            expiry=self.expiry,
        )
        self.offset = 0

    @property
    def table(self) -> FakeTable:
        return self.sessions.table

    def processor_batch(self, messages: list[Message]) -> None:
        asyncio.run(self.processor.handle_batch(messages))

    def batch(self, *events: tuple[str, str, float, str | None]) -> None:
        """Handle one batch of (integrationId, eventId, day, state) updates."""
        messages = []
        for integration_id, event_id, day, state in events:
            value = _event(event_id, integration_id, day, state)
            messages.append(Message(INPUT, integration_id.encode(), value, offset=self.offset,
                                    timestamp=(T0 + timedelta(days=day)).timestamp()))  # fmt: skip
            self.offset += 1
        self.processor_batch(messages)

    def indexed(self) -> set[str]:
        """The sessions in the expiry index."""
        return {entry.split(":", 1)[1] for entry in self.index.rows}


def test_sessions_leave_once_stream_time_passes_their_retention() -> None:
    partition = Partition()
    partition.batch(("cart", "c0", 0, None), ("paid", "p0", 0, None), ("gone", "g0", 0, None))
    partition.batch(("paid", "p1", 1, "closed"), ("gone", "g1", 1, "cancelled"))
    assert set(partition.table.rows) == {"cart", "paid", "gone"}
    partition.batch(("clock", "k0", 9, None))  # cancelled 8 days ago: past 7
    assert set(partition.table.rows) == {"cart", "paid", "clock"}
    partition.batch(("clock", "k1", 31, None))  # the cart idle for 31 days: past 30
    assert set(partition.table.rows) == {"paid", "clock"}
    partition.batch(("clock", "k2", 91.5, None))  # closed 90.5 days ago
    assert set(partition.table.rows) == {"clock"}
    assert partition.sessions.metrics.sessions_expired == 3
    # Nothing else was sent for a removal: the snapshot topic is left alone by default.
    assert all(record.value is not None for record in partition.sessions.producer.sent)


def test_a_session_updated_in_the_batch_that_would_expire_it_stays() -> None:
    partition = Partition()
    partition.batch(("cart", "c0", 0, None))
    # The same batch moves stream time past the cart's idle retention and updates the cart.
    partition.batch(("clock", "k0", 40, None), ("cart", "c1", 40, None))
    assert set(partition.table.rows) == {"cart", "clock"}
    assert partition.sessions.metrics.sessions_expired == 0


def test_an_event_for_a_removed_session_finds_nothing_of_it() -> None:
    partition = Partition()
    partition.batch(("paid", "p0", 0, None), ("paid", "p1", 0, "closed"))
    partition.batch(("clock", "k0", 100, None))
    assert "paid" not in partition.table.rows
    # A resent event is applied again to a new session, which inherits nothing.
    partition.batch(("paid", "p0", 100, None))
    session = decode_stored(partition.table.rows["paid"]).session
    assert (session.state, session.created) == ("open", T0 + timedelta(days=100))


def test_removals_send_snapshot_tombstones_when_asked() -> None:
    partition = Partition(tombstones=True)
    partition.batch(("gone", "g0", 0, None), ("gone", "g1", 0, "cancelled"))
    partition.batch(("clock", "k0", 8, None))
    tombstones = [record for record in partition.sessions.producer.to(SETTINGS.output_topic)
                  if record.value is None]  # fmt: skip
    assert [record.key for record in tombstones] == [b"gone"]


def test_a_far_future_occurred_at_moves_stream_time_only_an_hour_past_its_record() -> None:
    partition = Partition()
    partition.batch(("cart", "c0", 0, None))
    # occurredAt a year ahead of the record's broker timestamp (day 1).
    value = _event("k0", "clock", 365)
    forged = Message(
        INPUT, b"clock", value, offset=99, timestamp=(T0 + timedelta(days=1)).timestamp()
    )
    partition.processor_batch([forged])
    assert partition.expiry.stream_time(forged.partition) == (
        T0 + timedelta(days=1) + MAX_EVENT_TIME_AHEAD
    )
    assert "cart" in partition.table.rows


def test_the_index_holds_every_session_that_can_expire_and_follows_its_state() -> None:
    partition = Partition()
    partition.batch(("a", "a0", 0, None), ("b", "b0", 0, None))
    assert partition.indexed() == {"a", "b"}
    assert {entry[0] for entry in partition.index.rows} == {"o"}  # both open
    partition.batch(("a", "a1", 1, "closed"))
    assert sorted(entry[0] for entry in partition.index.rows) == ["c", "o"]
    assert len(partition.index.rows) == 2  # a's open entry left the index
    partition.batch(("clock", "k0", 40, None))  # b idle 40 days: removed, and its entry
    assert partition.indexed() == {"a", "clock"}


def test_the_sweep_reads_only_due_sessions_and_a_bounded_number_per_batch() -> None:
    partition = Partition()
    many = [(f"old-{n:03}", f"o{n}", 0, "cancelled") for n in range(100)]
    partition.batch(*[(key, "x" + event_id, 0, None) for key, event_id, _, _ in many])
    partition.batch(*many)
    partition.batch(*[(f"new-{n:03}", f"n{n}", 0, None) for n in range(100)])
    assert len(partition.table.rows) == 200
    removed_per_batch = []
    for n in range(10):
        before = len(partition.table.rows)
        partition.table.reads.clear()
        partition.batch(("clock", f"k{n}", 8 + n / 10, None))
        removed_per_batch.append(before - len(partition.table.rows) + (1 if n == 0 else 0))
        # The open sessions (idle for days, not 30) are never read.
        assert not any(key.startswith("new-") for _, key in partition.table.reads)
    # One record per batch: at most 1 + SWEEP_ENTRIES_PER_BATCH entries, so removals.
    assert max(removed_per_batch) <= 1 + SWEEP_ENTRIES_PER_BATCH
    assert not any(key.startswith("old-") for key in partition.table.rows)
    stored, age = partition.sessions.metrics.swept[3]
    assert stored == 101
    # The open ones, active at day 0, seen from day 8.9 (to their index bucket: 30 days / 64).
    assert timedelta(days=8.9) <= timedelta(seconds=age) <= timedelta(days=8.9 + 30 / 64)


def test_a_session_that_does_not_decode_is_kept_and_the_sweep_goes_on() -> None:
    partition = Partition()
    partition.batch(("bad", "b0", 0, None), ("ok", "o0", 0, None))
    partition.batch(("bad", "b1", 0, "cancelled"), ("ok", "o1", 0, "cancelled"))
    partition.table.rows["bad"] = b"\xc1 not msgpack"
    partition.batch(("clock", "k0", 8, None))
    assert set(partition.table.rows) == {"bad", "clock"}


def test_json_of_a_removed_session_is_not_served() -> None:
    partition = Partition()
    partition.batch(("gone", "g0", 0, None), ("gone", "g1", 0, "cancelled"))
    assert partition.processor.lookup("gone") is not None
    partition.batch(("clock", "k0", 8, None))
    assert partition.processor.lookup("gone") is None
    assert encode_json(partition.processor.lookup("clock"))


def test_a_sweep_that_is_behind_waits_while_it_has_taken_more_than_its_share() -> None:
    # Each clock reading moves 1 s: handling a batch takes 1 s, its sweep 1 s (100 %).
    ticks = iter(range(10_000))
    partition = Partition(clock=lambda: float(next(ticks)))
    partition.batch(*[(f"old-{n:03}", f"x{n}", 0, None) for n in range(100)])
    partition.batch(*[(f"old-{n:03}", f"y{n}", 0, "cancelled") for n in range(100)])
    scans_before = len(partition.index.scans)
    # Not behind: a sweep in every batch, however long it took.
    assert scans_before == 2 * 4  # one scan per state that can expire
    partition.batch(("clock", "k0", 8, None))  # 100 due: 17 removed, the sweep is behind
    assert len(partition.table.rows) == 100 - 17 + 1
    removed_at = [1]
    for n in range(1, 20):
        before = len(partition.table.rows)
        partition.batch(("clock", f"k{n}", 8, None))
        if len(partition.table.rows) < before:
            removed_at.append(n + 1)
    # 3 s swept against k s handled: behind, it sweeps again only within its share.
    handled = 2 + 1  # the two batches before and the one that fell behind
    assert removed_at[1] == math.ceil(3 / SWEEP_SHARE) - handled + 1


def test_a_held_session_waits_for_its_verdict_then_leaves() -> None:
    partition = Partition()
    held = update("h0", _at(0), profile_id="p-1", state="closed")
    value = raw({**held, "integrationId": "held", "applicationId": 322})
    partition.processor_batch([Message(INPUT, b"held", value, timestamp=T0.timestamp())])
    assert clock_of(decode_stored(partition.table.rows["held"])).held
    assert "held" not in partition.indexed()
    partition.batch(("clock", "k0", 120, None))  # closed 120 days ago, but held
    assert "held" in partition.table.rows
    verdict = encode_verdict(ProfileVerdict(322, "p-1", "held", is_first=True))
    partition.processor_batch([Message(SETTINGS.verdicts_topic, b"held", verdict)])
    assert "held" in partition.indexed()
    partition.batch(("clock", "k1", 121, None))
    assert "held" not in partition.table.rows
