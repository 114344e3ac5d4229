"""Small builders of raw events and a driver that runs them through the core."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from stream_app.domain import (
    Applied,
    Event,
    Rejected,
    Skipped,
    StoredSession,
    apply_event,
    decode_event,
)

SESSION_ID = "S1"
APPLICATION_ID = 322
CART = [
    {"sku": "SKU-1", "quantity": 3, "price": 10.0},
    {"sku": "SKU-2", "quantity": 2, "price": 5.5, "additionalCosts": {"ship": {"price": 1.0}}},
]


def envelope(event_id: str, kind: str, at: str, **fields: Any) -> dict[str, Any]:
    """The common fields of an event, plus whatever else is given."""
    return {
        "eventId": event_id,
        "type": kind,
        "integrationId": fields.pop("integration_id", SESSION_ID),
        "applicationId": fields.pop("application_id", APPLICATION_ID),
        "occurredAt": at,
        **fields,
    }


def update(event_id: str, at: str = "2026-11-25T10:00:00Z", /, **session: Any) -> dict[str, Any]:
    """An update event whose `session` holds the given fields (snake_case allowed)."""
    envelope_fields = {
        name: session.pop(name) for name in ("integration_id", "application_id") if name in session
    }
    patch = {_camel(name): value for name, value in session.items()}
    return envelope(event_id, "update", at, session=patch, **envelope_fields)


def give_back(
    event_id: str, lines: list[dict[str, int]], at: str = "2026-11-26T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    """A return event with the given lines."""
    return envelope(event_id, "return", at, returnedCartItems=lines, **fields)


def raw(event: dict[str, Any]) -> bytes:
    """The event as a record value."""
    return msgspec.json.encode(event)


def decoded(event: dict[str, Any]) -> Event:
    """The event decoded; fails the test if it is rejected."""
    result = decode_event(raw(event))
    assert not isinstance(result, Rejected), result
    return result


def apply_all(
    events: Iterable[dict[str, Any]], state: StoredSession | None = None
) -> StoredSession | None:
    """Apply events that must all apply; returns the final state."""
    for event in events:
        result = apply_event(state, decoded(event), None)
        assert isinstance(result, Applied), result
        state = result.stored
    return state


def outcome(state: StoredSession | None, event: dict[str, Any], key: str | None = None) -> Any:
    """Decode then apply one event: Applied, Skipped or Rejected."""
    result = decode_event(raw(event))
    if isinstance(result, Rejected):
        return result
    applied: Applied | Skipped | Rejected = apply_event(state, result, key)
    return applied


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
