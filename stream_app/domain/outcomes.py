"""What decoding and applying an event can lead to."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from stream_app.domain.outputs import CustomerSession, Transition
from stream_app.domain.profiles import ProfileClaim
from stream_app.domain.stored import StoredSession

RejectionCode = Literal[
    "malformed_json",
    "invalid_event",
    "key_mismatch",
    "application_mismatch",
    "session_not_found",
    "invalid_transition",
    "session_locked",
    "invalid_return",
    "session_too_large",
    "invalid_internal_record",
    "processing_error",
]


# gc=False on every Struct here: they hold only decoded values and other such Structs, so they
# can never be part of a reference cycle, and untracked they cost the cycle collector nothing.
class Rejected(Struct, frozen=True, gc=False):
    """The event is rejected; the message names the offending JSON path where there is one."""

    code: RejectionCode
    message: str


class Skipped(Struct, frozen=True, gc=False):
    """The event was already applied to this session; nothing to emit."""


class Applied(Struct, frozen=True, gc=False):
    """The event was applied; snapshot is None while firstSession is pending (held back)."""

    stored: StoredSession
    snapshot: CustomerSession | None
    transition: Transition | None
    claim: ProfileClaim | None
