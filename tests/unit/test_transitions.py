"""Every cell of the contract's transition table (section 4.7), allowed or not."""

from __future__ import annotations

from typing import Any

import pytest

from stream_app.domain import Applied, Rejected, StoredSession, encode_stored

from .builders import CART, apply_all, give_back, outcome, update

SETUPS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "open": [update("c1", cart_items=CART)],
    "closed": [update("c1", cart_items=CART), update("c2", state="closed")],
    "partially_returned": [
        update("c1", cart_items=CART),
        update("c2", state="closed"),
        give_back("c3", [{"position": 0, "quantity": 1}]),
    ],
    "cancelled": [update("c1", cart_items=CART), update("c2", state="cancelled")],
}

ACTIONS: dict[str, dict[str, Any]] = {
    "update without state": update("a1", "2026-11-27T10:00:00Z", cart_items=CART),
    "update to open": update("a1", "2026-11-27T10:00:00Z", state="open"),
    "update to closed": update("a1", "2026-11-27T10:00:00Z", state="closed"),
    "update to cancelled": update("a1", "2026-11-27T10:00:00Z", state="cancelled"),
    "return": give_back("a1", [{"position": 1, "quantity": 1}], "2026-11-27T10:00:00Z"),
}

# current state -> action -> resulting state, or the rejection code.
TABLE: dict[str, dict[str, str]] = {
    "none": {
        "update without state": "open",
        "update to open": "open",
        "update to closed": "closed",
        "update to cancelled": "invalid_transition",
        "return": "session_not_found",
    },
    "open": {
        "update without state": "open",
        "update to open": "open",
        "update to closed": "closed",
        "update to cancelled": "cancelled",
        "return": "invalid_transition",
    },
    "closed": {
        "update without state": "session_locked",  # it carries a cart: rule 8 comes first
        "update to open": "invalid_transition",
        "update to closed": "invalid_transition",
        "update to cancelled": "cancelled",
        "return": "partially_returned",
    },
    "partially_returned": {
        "update without state": "session_locked",
        "update to open": "invalid_transition",
        "update to closed": "invalid_transition",
        "update to cancelled": "cancelled",
        "return": "partially_returned",
    },
    "cancelled": {
        "update without state": "session_locked",
        "update to open": "invalid_transition",
        "update to closed": "invalid_transition",
        "update to cancelled": "invalid_transition",
        "return": "invalid_transition",
    },
}

STATES = {"open", "closed", "cancelled", "partially_returned"}
CELLS = [(current, action, TABLE[current][action]) for current in SETUPS for action in ACTIONS]


def _state(current: str) -> StoredSession | None:
    return apply_all(SETUPS[current])


@pytest.mark.parametrize(("current", "action", "expected"), CELLS)
def test_transition_table(current: str, action: str, expected: str) -> None:
    state = _state(current)
    before = None if state is None else encode_stored(state)
    result = outcome(state, ACTIONS[action])
    if expected in STATES:
        assert isinstance(result, Applied), result
        assert result.stored.session.state == expected
        previous = None if state is None else state.session.state
        if previous == expected:
            assert result.transition is None
        else:
            assert result.transition is not None
            assert (result.transition.from_state, result.transition.to) == (previous, expected)
            assert result.transition.event_id == "a1"
    else:
        assert isinstance(result, Rejected), result
        assert result.code == expected
        assert "- at `$." in result.message
        if state is not None:
            assert encode_stored(state) == before


@pytest.mark.parametrize("current", ["closed", "partially_returned", "cancelled"])
def test_an_empty_update_of_a_locked_session_is_an_invalid_transition(current: str) -> None:
    result = outcome(_state(current), update("a1", "2026-11-27T10:00:00Z"))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_transition"
    assert "$.session.state" in result.message


def test_a_session_can_be_created_closed() -> None:
    result = outcome(None, update("a1", cart_items=CART, state="closed"))
    assert isinstance(result, Applied)
    assert result.transition is not None
    assert (result.transition.from_state, result.transition.to) == (None, "closed")
