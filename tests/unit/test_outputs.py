"""The shapes of what the worker emits and stores, and the updates' field semantics."""

from __future__ import annotations

import base64
import gc
from datetime import UTC, datetime, timedelta, timezone

import msgspec

from stream_app.domain import (
    Applied,
    Rejected,
    RejectionSource,
    Skipped,
    UpdateEvent,
    build_rejection,
    decode_customer_session,
    decode_event,
    decode_key,
    decode_rejection,
    decode_stored,
    decode_transition,
    encode_json,
    encode_stored,
    published_snapshot,
)

from .builders import CART, apply_all, give_back, outcome, raw, update

SESSION_FIELDS = [
    "integrationId",
    "applicationId",
    "created",
    "updated",
    "profileId",
    "coupon",
    "referral",
    "state",
    "cartItems",
    "identifiers",
    "attributes",
    "discounts",
    "total",
    "firstSession",
    "updateCount",
]


def _created() -> Applied:
    result = outcome(None, update("e1", cart_items=CART))
    assert isinstance(result, Applied)
    return result


def test_a_snapshot_has_every_field_in_camel_case() -> None:
    snapshot = _created().snapshot
    assert snapshot is not None
    wire = msgspec.json.decode(encode_json(snapshot))
    assert list(wire) == SESSION_FIELDS
    assert wire["created"] == wire["updated"] == "2026-11-25T10:00:00Z"
    assert wire["cartItems"][0] == {
        "sku": "SKU-1",
        "quantity": 3,
        "price": 10.0,
        "position": 0,
        "returnedQuantity": 0,
        "remainingQuantity": 3,
    }
    assert wire["cartItems"][1]["additionalCosts"] == {"ship": {"price": 1.0}}
    assert decode_customer_session(encode_json(snapshot)) == snapshot


def test_cart_items_keep_every_given_field_and_ignore_computed_ones() -> None:
    item = {
        "sku": "A",
        "name": "Shoe",
        "category": "shoes",
        "quantity": 1,
        "price": 2.5,
        "weight": 1.0,
        "height": 2.0,
        "width": 3.0,
        "length": 4.0,
        "attributes": {"color": "red", "nothing": None},
        "additionalCosts": {"ship": {"price": 1.0, "vat": 0.2}},
        "position": 9,
        "returnedQuantity": 9,
        "remainingQuantity": 9,
        "madeUp": True,
    }
    state = apply_all([update("e1", cart_items=[item])])
    assert state is not None
    wire = msgspec.json.decode(encode_json(state.session))["cartItems"][0]
    expected = {key: value for key, value in item.items() if key != "madeUp"}
    expected.update(
        position=0,
        returnedQuantity=0,
        remainingQuantity=1,
        additionalCosts={"ship": {"price": 1.0}},
    )
    assert wire == expected


def test_a_transition_uses_from_and_camel_case() -> None:
    transition = _created().transition
    assert transition is not None
    wire = msgspec.json.decode(encode_json(transition))
    assert wire == {
        "integrationId": "S1",
        "applicationId": 322,
        "profileId": "",
        "from": None,
        "to": "open",
        "at": "2026-11-25T10:00:00Z",
        "eventId": "e1",
        "total": 43.0,
    }
    assert decode_transition(encode_json(transition)) == transition


def test_timestamps_are_normalized_to_utc() -> None:
    event = decode_event(raw(update("e1", "2026-11-25T10:01:00.5+01:00")))
    assert isinstance(event, UpdateEvent)
    assert event.occurred_at == datetime(2026, 11, 25, 9, 1, 0, 500000, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert b'"2026-11-25T09:01:00.500000Z"' in encode_json(event.occurred_at)


def test_updated_is_the_latest_occurred_at_and_created_the_first() -> None:
    state = apply_all(
        [
            update("e1", "2026-11-25T10:00:00Z"),
            update("e2", "2026-11-25T12:00:00+05:00"),  # 07:00Z: earlier
            update("e3", "2026-11-25T11:00:00Z"),
            update("e4", "2026-11-25T10:30:00Z"),
        ]
    )
    assert state is not None
    assert state.session.created == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert state.session.updated == datetime(2026, 11, 25, 11, tzinfo=UTC)
    assert state.session.update_count == 4


def test_update_semantics() -> None:
    state = apply_all(
        [
            update(
                "e1",
                coupon="C1",
                referral="R1",
                identifiers=["a", "b", "a", "c", "b"],
                attributes={"keep": 1, "drop": 2, "none": None},
                discounts={"d1": 1.0, "d2": -2.5},
                cart_items=CART,
            ),
            update(
                "e2",
                coupon="",
                attributes={"drop": None, "new": {"nested": [1, None]}, "keep": 3},
                discounts={"d3": 3.0},
                cart_items=[{"sku": "Z", "quantity": 1, "price": 0.1}],
            ),
            update("e3", cart_items=[*CART, {"sku": "Z", "quantity": 2, "price": 0.2}]),
        ]
    )
    assert state is not None
    session = state.session
    assert session.coupon == ""
    assert session.referral == "R1"
    assert session.identifiers == ["a", "b", "c"]
    assert session.attributes == {"keep": 3, "new": {"nested": [1, None]}}
    assert session.discounts == {"d3": 3.0}
    assert [item.position for item in session.cart_items] == [0, 1, 2]
    assert session.total == 43.4  # 3 x 10 + 2 x (5.5 + 1) + 2 x 0.2


def test_totals_carry_no_float_noise() -> None:
    state = apply_all([update("e1", cart_items=[{"sku": "A", "quantity": 3, "price": 0.1}])])
    assert state is not None
    assert 0.1 * 3 != 0.3
    assert state.session.total == 0.3


def test_a_new_cart_after_a_return_is_impossible_so_returns_never_leak() -> None:
    state = apply_all(
        [
            update("e1", cart_items=CART),
            update("e2", state="closed"),
            give_back("r1", [{"position": 0, "quantity": 2}]),
        ]
    )
    assert state is not None
    assert state.session.cart_items[0].returned_quantity == 2
    assert state.session.total == 10.0 + 2 * 6.5


def test_state_round_trips_and_is_compact() -> None:
    state = apply_all(
        [
            update("e1", profile_id="", cart_items=CART, attributes={"a": "b"}),
            update("e2", coupon="C"),
            update("e3", identifiers=["x"]),
            update("e4", state="closed"),
            give_back("r1", [{"position": 0, "quantity": 1}]),
        ]
    )
    assert state is not None
    encoded = encode_stored(state)
    assert decode_stored(encoded) == state
    assert len(encoded) < 1024


def test_published_snapshot_is_the_session_when_nothing_is_held() -> None:
    result = _created()
    assert published_snapshot(result.stored) == result.snapshot == result.stored.session


def test_rejection_of_utf8_value() -> None:
    value = b'{"eventId": "\xc3\xa9", nope'
    rejected = decode_event(value)
    assert isinstance(rejected, Rejected)
    source = RejectionSource(topic="in", partition=3, offset=42, key="S1")
    at = datetime(2026, 11, 25, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    record = build_rejection(rejected, value, source, at)
    wire = msgspec.json.decode(encode_json(record))
    assert wire == {
        "error": {"code": "malformed_json", "message": rejected.message},
        "event": '{"eventId": "é", nope',
        "eventEncoding": "utf-8",
        "source": {"topic": "in", "partition": 3, "offset": 42, "key": "S1"},
        "rejectedAt": "2026-11-25T10:00:00Z",
    }
    assert decode_rejection(encode_json(record)) == record


def test_rejection_of_a_value_that_is_not_utf8() -> None:
    value = b"\xff\x00{"
    rejected = decode_event(value)
    assert isinstance(rejected, Rejected)
    source = RejectionSource(topic="in", partition=0, offset=0, key=None)
    record = build_rejection(rejected, value, source, datetime(2026, 1, 1, tzinfo=UTC))
    wire = msgspec.json.decode(encode_json(record))
    assert wire["eventEncoding"] == "base64"
    assert base64.b64decode(wire["event"]) == value
    assert wire["source"]["key"] is None


def test_decode_key() -> None:
    assert decode_key(None) is None
    assert decode_key(b"S1") == "S1"
    assert decode_key(b"S\xff") == "S\\xff"


def test_unknown_fields_are_ignored_everywhere() -> None:
    event = update("e1", cart_items=CART, future_field={"x": 1})
    event["schemaVersion"] = 2
    state = apply_all([event, update("e2", state="closed")])
    lines = [{"position": 0, "quantity": 1, "reason": "too small"}]
    result = outcome(state, {**give_back("r1", lines), "channel": "store"})
    assert isinstance(result, Applied)
    assert result.stored.session.cart_items[0].returned_quantity == 1


def test_the_last_thousand_applied_event_ids_are_remembered() -> None:
    state = apply_all([update(f"e{n}") for n in range(1001)])
    assert state is not None
    assert len(state.recent_event_ids) == 1000
    assert state.recent_event_ids[0] == "e1"
    assert isinstance(outcome(state, update("e1")), Skipped)
    forgotten = outcome(state, update("e0"))
    assert isinstance(forgotten, Applied)
    assert forgotten.stored.session.update_count == 1002


def test_states_and_events_are_not_tracked_by_the_cycle_collector() -> None:
    # The worker keeps many states; they hold no cycles, so collections need not walk them.
    event = decode_event(raw(update("e1", cart_items=CART)))
    assert isinstance(event, UpdateEvent)
    result = outcome(None, update("e1", cart_items=CART))
    assert isinstance(result, Applied)
    untracked = [event, event.session, result, result.stored, result.stored.session]
    untracked += [*result.stored.session.cart_items, decode_stored(encode_stored(result.stored))]
    assert not any(gc.is_tracked(obj) for obj in untracked)
