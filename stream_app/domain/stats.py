"""Windowed session statistics per application (contract section 11); pure.

A window is a tumbling interval of event time (`occurredAt`, UTC) aligned on the Unix epoch,
`size` seconds long. What an applied event adds to its application's window is decided here
(`record_event`), from the session before and after the event; so are the two clocks that
close windows:

- a **source** (one partition of the session topics) closes a window when its stream time
  (the latest `occurredAt` it applied) is past the window's end plus the grace; an event for a
  window its partition has closed is late and not counted (`is_late`);
- the **combiner** (one partition of the partials topic) sums what every source sent for an
  application and closes a window once every source has closed it (`CombinerClock.closable`).

Money is summed as Decimal from each total's shortest decimal text, so a sum does not depend
on the order its terms were added in: the figures of a window are the same whichever
partitions, workers and batches its events went through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal

import msgspec
from msgspec import Struct

from stream_app.domain.events import Event, ReturnEvent
from stream_app.domain.outputs import CustomerSession

ZERO = Decimal(0)
#: Where the sums are added: enough digits for any sum of float totals to be exact (a float's
#: decimal text spans at most ~770 digits from its largest to its smallest), so no sum is
#: rounded and none depends on the order of its terms.
EXACT = Context(prec=2000, Emax=10**6, Emin=-(10**6))
#: The windows a datetime can name: starting in year 1, ending in year 9999.
FIRST_WINDOW_START = math.floor(datetime(1, 1, 1, tzinfo=UTC).timestamp())
LAST_WINDOW_END = math.floor(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
#: Window times in table keys: seconds since the epoch plus this, as 12 digits, so that keys
#: sort as times do (back to year -1200 and up to year 30,000).
_KEY_OFFSET = 10**11


@dataclass(frozen=True, slots=True)
class Windowing:
    """Tumbling windows of `size` seconds, closed `grace` seconds after their end."""

    size: int
    grace: int

    def start_of(self, at: datetime) -> int:
        """The start (epoch seconds) of the window holding `at`."""
        return self.start_at(at.timestamp())

    def start_at(self, seconds: float) -> int:
        """The start of the window holding `seconds` since the epoch."""
        return int(seconds // self.size) * self.size

    def closed_through(self, stream_time: float) -> int:
        """Every window ending at or before this time (epoch seconds) is closed, at this
        stream time: a window closes once stream time reaches its end plus the grace."""
        return math.floor((stream_time - self.grace) / self.size) * self.size

    def is_late(self, window_start: int, closed_through: int) -> bool:
        """Whether the window starting at `window_start` is already closed."""
        return window_start + self.size <= closed_through

    def is_representable(self, window_start: int) -> bool:
        """Whether the window starting there lies in years 1 to 9999 (a week-long window can
        start before the first day of year 1)."""
        return is_window(window_start, window_start + self.size)


def is_window(start: int, end: int) -> bool:
    """Whether [start, end) is a window a record can name: not empty, within years 1 to 9999."""
    return FIRST_WINDOW_START <= start < end <= LAST_WINDOW_END


class Figures(Struct, gc=False, rename="camel"):
    """What a window counts for one application; mutable, filled in place (`add`)."""

    sessions_created: int = 0
    sessions_closed: int = 0
    sessions_cancelled: int = 0
    sessions_partially_returned: int = 0
    #: The session's `total` at each of its transitions into `closed`.
    revenue_closed: Decimal = ZERO
    #: Per applied return event, the total before minus the total after.
    returned_value: Decimal = ZERO
    #: The session's `total` at each transition from `open` into `cancelled` (as the cancelling
    #: event leaves it, like revenue_closed and the transition record): carts abandoned.
    abandoned_value: Decimal = ZERO
    #: Applied events that set a non-empty coupon different from the previous one.
    coupons_applied: int = 0
    events_applied: int = 0

    def add(self, other: Figures) -> None:
        """Add `other`'s counts and sums to these."""
        self.sessions_created += other.sessions_created
        self.sessions_closed += other.sessions_closed
        self.sessions_cancelled += other.sessions_cancelled
        self.sessions_partially_returned += other.sessions_partially_returned
        add = EXACT.add
        self.revenue_closed = add(self.revenue_closed, other.revenue_closed)
        self.returned_value = add(self.returned_value, other.returned_value)
        self.abandoned_value = add(self.abandoned_value, other.abandoned_value)
        self.coupons_applied += other.coupons_applied
        self.events_applied += other.events_applied


def money(value: float) -> Decimal:
    """A total as the decimal number its JSON text shows (exact, order-free sums)."""
    return Decimal(repr(value))


def record_event(
    figures: Figures, before: CustomerSession | None, after: CustomerSession, event: Event
) -> None:
    """Count one applied event into its window's figures (`before`: None when it created the
    session)."""
    figures.events_applied += 1
    if before is None:
        figures.sessions_created += 1
        previous_state = None
        previous_coupon = ""
    else:
        previous_state = before.state
        previous_coupon = before.coupon
    if after.coupon and after.coupon != previous_coupon:
        figures.coupons_applied += 1
    if isinstance(event, ReturnEvent) and before is not None:
        returned = EXACT.subtract(money(before.total), money(after.total))
        figures.returned_value = EXACT.add(figures.returned_value, returned)
    state = after.state
    if state == previous_state:
        return
    if state == "closed":
        figures.sessions_closed += 1
        figures.revenue_closed = EXACT.add(figures.revenue_closed, money(after.total))
    elif state == "cancelled":
        figures.sessions_cancelled += 1
        if previous_state == "open":
            figures.abandoned_value = EXACT.add(figures.abandoned_value, money(after.total))
    elif state == "partially_returned":
        figures.sessions_partially_returned += 1


def contribution(before: CustomerSession | None, after: CustomerSession, event: Event) -> Figures:
    """What one applied event adds to its window."""
    figures = Figures()
    record_event(figures, before, after, event)
    return figures


# Internal records: what a source sends to the combiner on the partials topic (msgpack).


class StatsPartial(Struct, frozen=True, gc=False, array_like=True, tag="partial"):
    """A source's figures for one application and window, from one batch of its records.

    `source` names the source topic and partition ("i3": input partition 3, "r3": re-keyed
    events); (`offset`, `sequence`) orders the partials of one source, so the combiner can
    tell one it has already added (read again after a crash) from a new one.
    """

    application_id: int
    window_start: int
    window_end: int
    source: str
    offset: int
    sequence: int
    figures: Figures


class StatsWatermark(Struct, frozen=True, gc=False, array_like=True, tag="watermark"):
    """A source partition has closed every window ending at or before `closed_through`.

    Sent to every partition of the partials topic, behind the partials it covers.
    """

    partition: int
    closed_through: int


StatsMessage = StatsPartial | StatsWatermark


class CombinerClock(Struct, gc=False):
    """A combiner partition's view of its sources (stored with its windows)."""

    #: Per source partition, the latest `closed_through` it sent (absent: none yet).
    closed: dict[int, int] = msgspec.field(default_factory=dict)
    #: Per source ("i3", "r3"), the (offset, sequence) of the last partial added.
    added: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    #: Windows ending at or before this are closed and emitted here.
    emitted_through: int | None = None

    def closable(self, sources: int) -> int | None:
        """The end up to which every one of `sources` partitions has closed its windows."""
        if len(self.closed) < sources:
            return None
        return min(self.closed.get(p, 0) for p in range(sources))

    def is_new(self, partial: StatsPartial) -> bool:
        """Whether `partial` comes after the last one added from its source; records it."""
        position = (partial.offset, partial.sequence)
        last = self.added.get(partial.source)
        if last is not None and position <= tuple(last):
            return False
        self.added[partial.source] = position
        return True


class StoredWindow(Struct, gc=False):
    """One application's window at the combiner."""

    window_end: int
    figures: Figures
    closed: bool = False


class WindowStats(Struct, frozen=True, gc=False, rename="camel"):
    """A window's statistics as published on the stats topic and answered by GET /stats."""

    application_id: int
    window_start: datetime
    window_end: datetime
    #: True on the stats topic (final); GET /stats also answers windows still open (false).
    closed: bool
    sessions_created: int
    sessions_closed: int
    sessions_cancelled: int
    sessions_partially_returned: int
    revenue_closed: Decimal
    returned_value: Decimal
    abandoned_value: Decimal
    coupons_applied: int
    events_applied: int


def plain(value: Decimal) -> Decimal:
    """The same number without an exponent, so that JSON shows it in plain digits."""
    return Decimal(format(value, "f"))


def window_stats(application_id: int, window_start: int, window: StoredWindow) -> WindowStats:
    """The published form of a stored window."""
    figures = window.figures
    return WindowStats(
        application_id=application_id,
        window_start=datetime.fromtimestamp(window_start, UTC),
        window_end=datetime.fromtimestamp(window.window_end, UTC),
        closed=window.closed,
        sessions_created=figures.sessions_created,
        sessions_closed=figures.sessions_closed,
        sessions_cancelled=figures.sessions_cancelled,
        sessions_partially_returned=figures.sessions_partially_returned,
        revenue_closed=plain(figures.revenue_closed),
        returned_value=plain(figures.returned_value),
        abandoned_value=plain(figures.abandoned_value),
        coupons_applied=figures.coupons_applied,
        events_applied=figures.events_applied,
    )


# Keys of the combiner's table: a window by application then time (what GET /stats reads),
# the open windows by end (what closing reads), the closed ones by end (what retention reads).
CLOCK_KEY = "m"


def time_key(at: int) -> str:
    """An epoch time as a fixed-width key part that sorts as times do."""
    return f"{at + _KEY_OFFSET:012d}"


def window_key(application_id: int, window_start: int, window_end: int) -> str:
    """The table key of an application's window: windows of different lengths (the setting
    changed) that start together are kept apart."""
    return f"a{application_id}:{time_key(window_start)}{time_key(window_end)}"


def window_of_key(key: str) -> int:
    """The window start of a `window_key`."""
    return int(key.rsplit(":", 1)[1][:12]) - _KEY_OFFSET


def window_range(application_id: int, start: int, stop: int) -> tuple[str, str]:
    """The keys of an application's windows that start in [start, stop)."""
    return f"a{application_id}:{time_key(start)}", f"a{application_id}:{time_key(stop)}"


def open_key(window_end: int, application_id: int, window_start: int) -> str:
    """An open window's index entry, ordered by its end."""
    return f"o{time_key(window_end)}{time_key(window_start)}{application_id}"


def closed_key(window_end: int, application_id: int, window_start: int) -> str:
    """A closed window's index entry, ordered by its end (for retention)."""
    return f"c{time_key(window_end)}{time_key(window_start)}{application_id}"


def indexed_window(entry: str) -> tuple[int, int, int]:
    """(application_id, window_start, window_end) of an open or closed index entry."""
    return int(entry[25:]), int(entry[13:25]) - _KEY_OFFSET, int(entry[1:13]) - _KEY_OFFSET


def index_stop(prefix: str, through: int) -> str:
    """The first index key (of `prefix`) of windows ending after `through`."""
    return f"{prefix}{time_key(through + 1)}"


_partial_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(StatsMessage)
_window_decoder = msgspec.msgpack.Decoder(StoredWindow)
_clock_decoder = msgspec.msgpack.Decoder(CombinerClock)
_stats_json = msgspec.json.Encoder(decimal_format="number")
_stats_decoder = msgspec.json.Decoder(WindowStats)


def encode_stats_record(message: StatsMessage | StoredWindow | CombinerClock) -> bytes:
    """A partial or watermark on the partials topic, or a combiner table value (msgpack)."""
    return _partial_encoder.encode(message)


def decode_stats_message(raw: bytes) -> StatsMessage:
    """A record of the partials topic (raises msgspec errors on garbage)."""
    return _message_decoder.decode(raw)


def decode_window(raw: bytes) -> StoredWindow:
    """A window stored by the combiner."""
    return _window_decoder.decode(raw)


def decode_combiner_clock(raw: bytes) -> CombinerClock:
    """The combiner's clock, stored under CLOCK_KEY."""
    return _clock_decoder.decode(raw)


def encode_window_stats(stats: object) -> bytes:
    """JSON with exact decimal numbers (not strings) for the sums."""
    return _stats_json.encode(stats)


def decode_window_stats(raw: bytes) -> WindowStats:
    """A record of the stats topic (raises msgspec errors on garbage)."""
    return _stats_decoder.decode(raw)
