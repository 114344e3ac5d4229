"""What decoding and applying an event can lead to."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from stream_app.domain.model import CustomerSession, Transition
from stream_app.domain.profiles import ProfileClaim
from stream_app.domain.state import SessionState

RejectionCode = Literal[
    "malformed_json",
    "invalid_event",
    "key_mismatch",
    "application_mismatch",
    "session_not_found",
    "invalid_transition",
    "session_locked",
    "invalid_return",
]


class Rejected(Struct, frozen=True):
    """The event is rejected; the message names the offending JSON path where there is one."""

    code: RejectionCode
    message: str


class Skipped(Struct, frozen=True):
    """The event was already applied to this session; nothing to emit."""


class Applied(Struct, frozen=True):
    """The event was applied; snapshot is None while firstSession is pending (held back)."""

    state: SessionState
    snapshot: CustomerSession | None
    transition: Transition | None
    claim: ProfileClaim | None
