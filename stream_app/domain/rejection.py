"""Dead-letter records (contract section 3, Rejection)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

from msgspec import Struct

from stream_app.domain.outcomes import Rejected


# gc=False on every Struct here: they hold only decoded values and other such Structs, so they
# can never be part of a reference cycle, and untracked they cost the cycle collector nothing.
class RejectionDetail(Struct, frozen=True, gc=False):
    """Why the event was rejected."""

    code: str
    message: str


class RejectionSource(Struct, frozen=True, gc=False):
    """Where the rejected record was read from."""

    topic: str
    partition: int
    offset: int
    key: str | None


class Rejection(Struct, frozen=True, gc=False, rename="camel"):
    """A dead-letter record: the error, the original value, and where it came from."""

    error: RejectionDetail
    event: str
    event_encoding: Literal["utf-8", "base64"]
    source: RejectionSource
    rejected_at: datetime


def build_rejection(
    rejected: Rejected, raw: bytes, source: RejectionSource, rejected_at: datetime
) -> Rejection:
    """Build the dead-letter record for a rejected value (kept verbatim); rejected_at is aware."""
    encoding: Literal["utf-8", "base64"]
    try:
        event, encoding = raw.decode(), "utf-8"
    except UnicodeDecodeError:
        event, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return Rejection(
        error=RejectionDetail(code=rejected.code, message=rejected.message),
        event=event,
        event_encoding=encoding,
        source=source,
        rejected_at=rejected_at.astimezone(UTC),
    )
