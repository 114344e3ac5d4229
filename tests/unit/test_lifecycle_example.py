"""The contract's worked example (lifecycle.jsonl), checked record by record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stream_app.domain import (
    Applied,
    Rejected,
    Skipped,
    StoredSession,
    apply_event,
    apply_verdict,
    decide_claim,
    decode_event,
    encode_stored,
    published_snapshot,
)

LINES = (Path(__file__).parent.parent / "data" / "lifecycle.jsonl").read_bytes().splitlines()
KEY = "URNGV8294NV"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _apply(state: StoredSession | None, line: bytes) -> Applied | Skipped | Rejected:
    event = decode_event(line)
    assert not isinstance(event, Rejected), event
    return apply_event(state, event, KEY)


def test_the_worked_example_end_to_end() -> None:
    # e1 creates the session.
    e1 = _apply(None, LINES[0])
    assert isinstance(e1, Applied)
    snapshot = e1.snapshot
    assert snapshot is not None
    assert snapshot.state == "open"
    assert snapshot.update_count == 1
    assert snapshot.created == snapshot.updated == _at("2026-11-25T10:00:00Z")
    assert snapshot.total == 124.99
    assert snapshot.first_session is True
    assert snapshot.profile_id == snapshot.coupon == snapshot.referral == ""
    assert snapshot.identifiers == ["91.11.156.141"]
    assert snapshot.attributes == {}
    assert snapshot.discounts == {}
    assert [
        (i.position, i.returned_quantity, i.remaining_quantity) for i in snapshot.cart_items
    ] == [
        (0, 0, 2),
        (1, 0, 1),
    ]
    assert e1.transition is not None
    assert (e1.transition.from_state, e1.transition.to) == (None, "open")
    assert e1.transition.total == 124.99
    assert e1.claim is None

    # e2 gives it a profile: the snapshot waits for the profile's verdict.
    e2 = _apply(e1.stored, LINES[1])
    assert isinstance(e2, Applied)
    assert e2.snapshot is None
    assert e2.transition is None
    assert e2.claim is not None
    assert (e2.claim.application_id, e2.claim.profile_id, e2.claim.integration_id) == (
        322,
        "customer-7",
        KEY,
    )
    assert published_snapshot(e2.stored) == e1.snapshot
    owner, verdict = decide_claim(None, e2.claim)
    assert owner == KEY
    assert verdict.is_first is True
    state, released = apply_verdict(e2.stored, verdict)
    assert released is not None
    assert released.first_session is True
    assert released.profile_id == "customer-7"
    assert released.coupon == "XMAS-2021"
    assert released.attributes == {"channel": "web"}
    # 10:01+01:00 is 09:01Z, earlier than 10:00Z: `updated` is the max.
    assert released.updated == _at("2026-11-25T10:00:00Z")
    assert released.update_count == 2
    assert published_snapshot(state) == released

    # The second e2 is a duplicate.
    assert isinstance(_apply(state, LINES[2]), Skipped)

    # e3 closes it.
    e3 = _apply(state, LINES[3])
    assert isinstance(e3, Applied)
    assert e3.snapshot is not None
    assert e3.snapshot.state == "closed"
    assert e3.snapshot.discounts == {"10% off shoes": 10.0}
    assert e3.snapshot.update_count == 3
    assert e3.snapshot.updated == _at("2026-11-25T10:05:00Z")
    assert e3.transition is not None
    assert (e3.transition.from_state, e3.transition.to) == ("open", "closed")
    assert e3.transition.profile_id == "customer-7"

    # e4 changes a closed session: rejected, state untouched.
    before = encode_stored(e3.stored)
    e4 = _apply(e3.stored, LINES[4])
    assert isinstance(e4, Rejected)
    assert e4.code == "session_locked"
    assert "$.session.coupon" in e4.message
    assert encode_stored(e3.stored) == before

    # e5 returns one unit of line 0.
    e5 = _apply(e3.stored, LINES[5])
    assert isinstance(e5, Applied)
    assert e5.snapshot is not None
    assert e5.snapshot.state == "partially_returned"
    line = e5.snapshot.cart_items[0]
    assert (line.returned_quantity, line.remaining_quantity) == (1, 1)
    assert e5.snapshot.total == 74.99
    assert e5.snapshot.update_count == 4
    assert e5.transition is not None
    assert (e5.transition.from_state, e5.transition.to) == ("closed", "partially_returned")
    assert e5.transition.total == 74.99

    # e6 cancels it.
    e6 = _apply(e5.stored, LINES[6])
    assert isinstance(e6, Applied)
    assert e6.snapshot is not None
    assert e6.snapshot.state == "cancelled"
    assert e6.snapshot.update_count == 5
    assert e6.snapshot.updated == _at("2026-11-27T09:00:00Z")
    assert e6.snapshot.created == _at("2026-11-25T10:00:00Z")
    assert e6.snapshot.first_session is True
    assert e6.transition is not None
    assert (e6.transition.from_state, e6.transition.to) == ("partially_returned", "cancelled")
    assert e6.stored.recent_event_ids == ["e1", "e2", "e3", "e5", "e6"]
    assert len(encode_stored(e6.stored)) < 2048
