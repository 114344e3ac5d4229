"""Hypothesis strategies for input records: mostly valid events, some invalid ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
from hypothesis import strategies as st

SESSIONS = ("S1", "S2")
PROFILES = ("", "p1", "p2", "p3")
ZONES = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30)))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
json_keys = st.sampled_from(["k", "l", "m n"])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(json_keys, inner, max_size=2)
    ),
    max_leaves=4,
)
prices = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 5.0, 19.99, 50.0]),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
timestamps = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
    st.one_of(
        st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
        st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
        st.datetimes(),
    ),
    st.sampled_from(ZONES),
)
cart_items = st.fixed_dictionaries(
    {"sku": st.sampled_from(["A", "B", "C"]), "quantity": st.integers(1, 5), "price": prices},
    optional={
        "name": st.text(max_size=5),
        "weight": prices,
        "attributes": st.dictionaries(json_keys, json_values, max_size=2),
        "additionalCosts": st.dictionaries(
            st.sampled_from(["ship", "vat"]), st.fixed_dictionaries({"price": prices}), max_size=2
        ),
        "position": st.integers(0, 9),
        "remainingQuantity": st.integers(0, 9),
    },
)
patches = st.fixed_dictionaries(
    {},
    optional={
        "profileId": st.sampled_from(PROFILES),
        "coupon": st.sampled_from(["", "C1", "C2"]),
        "referral": st.sampled_from(["", "R1"]),
        "state": st.sampled_from(["open", "closed", "cancelled"]),
        "cartItems": st.lists(cart_items, max_size=4),
        "identifiers": st.lists(st.sampled_from(["a", "b", "c"]), max_size=4),
        "attributes": st.dictionaries(
            st.sampled_from(["x", "y", "z"]), st.one_of(st.none(), json_values), max_size=3
        ),
        "discounts": st.dictionaries(
            st.sampled_from(["d1", "d2"]), st.floats(-100, 100, allow_nan=False), max_size=2
        ),
    },
)
return_lines = st.lists(
    st.fixed_dictionaries(
        {"position": st.integers(0, 4)}, optional={"quantity": st.integers(1, 6)}
    ),
    min_size=1,
    max_size=3,
)


def _event(
    event_id: str, integration_id: str, application_id: int, at: str, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "integrationId": integration_id,
        "applicationId": application_id,
        "occurredAt": at,
        **body,
    }


bodies = st.one_of(
    st.builds(lambda patch: {"type": "update", "session": patch}, patches),
    st.builds(lambda patch: {"type": "update", "session": patch}, patches),
    st.builds(lambda lines: {"type": "return", "returnedCartItems": lines}, return_lines),
)
events = st.builds(
    _event,
    st.sampled_from([f"e{n}" for n in range(40)]),
    st.sampled_from(SESSIONS),
    st.sampled_from([322] * 9 + [323]),
    timestamps,
    bodies,
)


def _broken(event: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    return {**event, field: value}


invalid_events = st.one_of(
    st.builds(_broken, events, st.sampled_from(["applicationId", "eventId", "type"]), json_values),
    st.builds(
        lambda event, item: {**event, "type": "update", "session": {"cartItems": [item]}},
        events,
        st.fixed_dictionaries(
            {"sku": st.just("A"), "quantity": st.integers(-2, 0), "price": prices}
        ),
    ),
)


@st.composite
def records(draw: st.DrawFn) -> tuple[str | None, bytes]:
    """One input record: (key, value); mostly valid events keyed by their integrationId."""
    roll = draw(st.integers(0, 19))
    event = draw(invalid_events if roll == 0 else events)
    value = draw(st.binary(max_size=30)) if roll == 1 else msgspec.json.encode(event)
    integration_id = event.get("integrationId")
    key: str | None = integration_id if isinstance(integration_id, str) else None
    if roll == 2:
        key = None
    elif roll == 3:
        key = "S9"
    return key, value


@st.composite
def sequences(draw: st.DrawFn, max_size: int = 30) -> list[tuple[str | None, bytes]]:
    """Random records, after a valid start that takes each session some way into its life."""
    start: list[tuple[str | None, bytes]] = []
    for integration_id in SESSIONS:
        steps = draw(st.integers(0, 3))
        patches_in_order = [
            {"cartItems": draw(st.lists(cart_items, min_size=1, max_size=3))},
            {"state": "closed"},
        ][: min(steps, 2)]
        bodies_in_order: list[dict[str, Any]] = [
            {"type": "update", "session": patch} for patch in patches_in_order
        ]
        if steps == 3:
            lines = draw(return_lines)
            bodies_in_order.append({"type": "return", "returnedCartItems": lines})
        for index, body in enumerate(bodies_in_order):
            event = _event(f"start-{index}", integration_id, 322, draw(timestamps), body)
            start.append((integration_id, msgspec.json.encode(event)))
    return start + draw(st.lists(records(), max_size=max_size))
