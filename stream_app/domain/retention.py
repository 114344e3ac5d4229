"""When a stored session leaves the table (contract section 10); pure.

Retention is decided on event time: a session's last activity is its `updated` value (the
latest `occurredAt` applied to it), and the clock it is compared with is the partition's stream
time, the latest `occurredAt` the partition has applied. Both come from the events, so a
replay of the same input decides the same expiries, whatever the wall clock says.

A cancelled session is final; a closed or partially returned one can still receive returns and
a cancel for as long as the return window lasts; an open one can be updated for as long as it
is in use. Each has its own period (`Retention`); None keeps such sessions for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
from msgspec import Struct

from stream_app.domain.outputs import SessionStatus
from stream_app.domain.stored import StoredSession, is_held


@dataclass(frozen=True, slots=True)
class Retention:
    """How long after its last activity a session in each state stays (None: for ever)."""

    final: timedelta | None
    closed: timedelta | None
    idle: timedelta | None

    @property
    def enabled(self) -> bool:
        """Whether any session can ever expire."""
        return not (self.final is None and self.closed is None and self.idle is None)

    def period(self, state: SessionStatus) -> timedelta | None:
        """How long a session in `state` stays after its last activity."""
        if state == "cancelled":
            return self.final
        if state == "open":
            return self.idle
        return self.closed  # closed, partially_returned: the return window


class SessionClock(Struct, frozen=True, gc=False):
    """What retention needs of a stored session: its state, last activity, and whether its
    snapshots are held for a firstSession verdict (such a session waits for its verdict)."""

    state: SessionStatus
    updated: datetime
    held: bool = False


class _SessionFields(Struct, frozen=True, gc=False, rename="camel"):
    state: SessionStatus
    updated: datetime
    profile_id: str = ""


class _StoredFields(Struct, frozen=True, gc=False):
    session: _SessionFields
    claims: dict[str, bool | None] = {}


# Decoding only these fields skips the rest of the stored value (cart, dedup memory) unbuilt,
# so the sweep reads a stored session at a fraction of a full decode's cost.
_clock_decoder = msgspec.msgpack.Decoder(_StoredFields)


def decode_clock(stored: bytes) -> SessionClock:
    """The retention clock of a stored session (encode_stored's bytes)."""
    fields = _clock_decoder.decode(stored)
    session = fields.session
    held = session.profile_id != "" and fields.claims.get(session.profile_id) is None
    return SessionClock(session.state, session.updated, held)


def clock_of(state: StoredSession) -> SessionClock:
    """The retention clock of a decoded stored session."""
    return SessionClock(state.session.state, state.session.updated, is_held(state))


#: Each state's range in the expiry index, in the order the sweep reads them.
STATE_CODES: dict[SessionStatus, str] = {
    "cancelled": "x",
    "open": "o",
    "closed": "c",
    "partially_returned": "p",
}
#: Index buckets per retention period: a session leaves at most 1/64 of its period late, and
#: its index entry changes only when its state does or its last activity enters a new bucket.
BUCKETS_PER_PERIOD = 64
#: Bucket numbers count from here, so that every valid `occurredAt` (years 1-9999) has one >= 0.
_ORIGIN = datetime(1, 1, 1, tzinfo=UTC)
_BUCKET_DIGITS = 12


def _bucket_seconds(period: timedelta) -> int:
    return max(1, (period.days * 86_400 + period.seconds) // BUCKETS_PER_PERIOD)


def _seconds_since_origin(at: datetime) -> int:
    """Whole seconds from _ORIGIN to `at` (integer arithmetic: no float rounding)."""
    since = at - _ORIGIN
    return since.days * 86_400 + since.seconds


def index_key(key: str, clock: SessionClock, retention: Retention) -> str | None:
    """The session's entry in the expiry index (None: it cannot expire now).

    Entries sort by state, then by the bucket of the session's last activity, so the sessions
    of a state that are due are a prefix of that state's range.
    """
    period = retention.period(clock.state)
    if period is None or clock.held:
        return None
    bucket = _seconds_since_origin(clock.updated) // _bucket_seconds(period)
    return f"{STATE_CODES[clock.state]}{bucket:0{_BUCKET_DIGITS}d}:{key}"


def due_before(state: SessionStatus, stream_time: datetime, retention: Retention) -> str | None:
    """Index entries of `state` below this key are due: their sessions have expired.

    An entry is due when its bucket ends no later than `stream_time` minus the state's period,
    so its session's last activity is more than a period before `stream_time`.
    """
    period = retention.period(state)
    if period is None:
        return None
    limit = _seconds_since_origin(stream_time - period) // _bucket_seconds(period)
    return f"{STATE_CODES[state]}{max(limit, 0):0{_BUCKET_DIGITS}d}"


def indexed_session(entry: str) -> str:
    """The integrationId of an index entry."""
    return entry[2 + _BUCKET_DIGITS :]


def entry_time(entry: str, retention: Retention) -> datetime | None:
    """The start of an index entry's bucket: about its session's last activity."""
    state = next((s for s, code in STATE_CODES.items() if code == entry[0]), None)
    period = None if state is None else retention.period(state)
    if period is None:
        return None
    bucket = int(entry[1 : 1 + _BUCKET_DIGITS])
    return _ORIGIN + timedelta(seconds=bucket * _bucket_seconds(period))


def is_expired(clock: SessionClock, stream_time: datetime, retention: Retention) -> bool:
    """Whether a session has outlived its state's retention at `stream_time`.

    A held session is kept until its verdict arrives, so that a verdict always finds the
    session that claimed (under exactly_once one that does not is dead-lettered as forged).
    """
    period = retention.period(clock.state)
    return period is not None and not clock.held and stream_time - clock.updated > period
