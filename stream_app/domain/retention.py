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
from datetime import datetime, timedelta

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

    @property
    def shortest(self) -> timedelta | None:
        """The shortest period of any state (None: nothing expires)."""
        periods = [p for p in (self.final, self.closed, self.idle) if p is not None]
        return min(periods, default=None)

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


def is_expired(clock: SessionClock, stream_time: datetime, retention: Retention) -> bool:
    """Whether a session has outlived its state's retention at `stream_time`.

    A held session is kept until its verdict arrives, so that a verdict always finds the
    session that claimed (under exactly_once one that does not is dead-lettered as forged).
    """
    period = retention.period(clock.state)
    return period is not None and not clock.held and stream_time - clock.updated > period
