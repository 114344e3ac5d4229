"""One test per rejection code; each message names the offending JSON path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from stream_app.domain import Applied, Rejected, RejectionCode, decode_event, encode_stored

from .builders import CART, apply_all, envelope, give_back, outcome, raw, update

VALID = update("e1", cart_items=CART)


def _with(path: list[str | int], value: Any, event: dict[str, Any] | None = None) -> bytes:
    """A copy of the event (VALID by default) with one value replaced (or removed, if ...)."""
    copy = msgspec.json.decode(raw(event or VALID))
    target = copy
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw(copy)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"{",
        b"not json",
        b'{"eventId": "e1",}',
        b"[1, 2]",
        b'"an event"',
        b"null",
        b"42",
        b"\xff\xfe{}",
        raw(VALID).replace(b"SKU-1", b"SKU-\xc3"),
        raw(VALID).replace(b'"price":10.0', b'"price":NaN'),
        raw(VALID).replace(b'"price":10.0', b'"price":Infinity'),
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"[" * 10_000 + b"]" * 10_000,
        # A type error early on must not hide that the document is not JSON.
        b'{"eventId": 5, "type": "update", oops',
        # Unknown fields are skipped, but their bytes must still be UTF-8.
        raw(VALID)[:-1] + b', "junk": "\xff"}',
    ],
)
def test_malformed_json(value: bytes) -> None:
    result = decode_event(value)
    assert isinstance(result, Rejected)
    assert result.code == "malformed_json"


LONG = "x" * 1001


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (["eventId"], ..., "`eventId`"),
        (["eventId"], "", "$.eventId"),
        (["eventId"], "e" * 256, "$.eventId"),
        (["type"], "delete", "$.type"),
        (["type"], ..., "`type`"),
        (["integrationId"], "", "$.integrationId"),
        (["integrationId"], LONG, "$.integrationId"),
        (["applicationId"], 0, "$.applicationId"),
        (["applicationId"], "322", "$.applicationId"),
        (["applicationId"], 322.0, "$.applicationId"),
        (["applicationId"], True, "$.applicationId"),
        (["applicationId"], 10**30, "$.applicationId"),
        (["occurredAt"], "2026-11-25T10:00:00", "$.occurredAt"),
        (["occurredAt"], "yesterday", "$.occurredAt"),
        (["occurredAt"], 1764064800, "$.occurredAt"),
        (["occurredAt"], "2026-11-25T10:01", "$.occurredAt"),
        (["occurredAt"], "0001-01-01T00:00:00+01:00", "$.occurredAt"),
        (["occurredAt"], "9999-12-31T23:59:59-01:00", "$.occurredAt"),
        (["session"], ..., "`session`"),
        (["session"], [], "$.session"),
        (["session"], None, "$.session"),
        (["session", "profileId"], LONG, "$.session.profileId"),
        (["session", "profileId"], None, "$.session.profileId"),
        (["session", "coupon"], "C" * 101, "$.session.coupon"),
        (["session", "referral"], "R" * 101, "$.session.referral"),
        (["session", "state"], "frozen", "$.session.state"),
        (["session", "state"], "partially_returned", "$.session.state"),
        (["session", "cartItems"], {}, "$.session.cartItems"),
        (["session", "cartItems"], [CART[0]] * 1001, "$.session.cartItems"),
        (["session", "cartItems", 1, "quantity"], 0, "$.session.cartItems[1].quantity"),
        (["session", "cartItems", 1, "quantity"], 1.5, "$.session.cartItems[1].quantity"),
        (["session", "cartItems", 1, "quantity"], 1.0, "$.session.cartItems[1].quantity"),
        (["session", "cartItems", 1, "quantity"], ..., "$.session.cartItems[1]"),
        (["session", "cartItems", 0, "quantity"], 10_001, "$.session.cartItems[0].quantity"),
        (["session", "cartItems", 0, "price"], -0.01, "$.session.cartItems[0].price"),
        (["session", "cartItems", 0, "price"], "10", "$.session.cartItems[0].price"),
        (["session", "cartItems", 0, "sku"], "", "$.session.cartItems[0].sku"),
        (["session", "cartItems", 0, "sku"], LONG, "$.session.cartItems[0].sku"),
        (["session", "cartItems", 0, "weight"], -1, "$.session.cartItems[0].weight"),
        (["session", "cartItems", 0, "name"], 7, "$.session.cartItems[0].name"),
        (["session", "cartItems", 0, "attributes"], [], "$.session.cartItems[0].attributes"),
        (
            ["session", "cartItems", 1, "additionalCosts", "ship", "price"],
            -1,
            "$.session.cartItems[1].additionalCosts[...].price",
        ),
        (["session", "identifiers"], ["a"] * 101, "$.session.identifiers"),
        (["session", "identifiers"], ["a", "b", ""], "$.session.identifiers[2]"),
        (["session", "identifiers"], ["a", LONG], "$.session.identifiers[1]"),
        (["session", "attributes"], "x", "$.session.attributes"),
        (["session", "attributes"], {"a": [1, {"b": 2**64}]}, "$.session.attributes.a[1].b"),
        (["session", "attributes"], {"my key": -(2**63) - 1}, '$.session.attributes["my key"]'),
        (["session", "discounts"], {"a": "ten"}, "$.session.discounts"),
        (["session", "discounts"], [], "$.session.discounts"),
    ],
)
def test_invalid_event(path: list[str | int], value: Any, named: str) -> None:
    result = decode_event(_with(path, value))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_event"
    assert named in result.message, result.message


def test_invalid_event_for_numbers_out_of_range() -> None:
    # 1e400 is valid JSON but no double; each of these names the number's path.
    for field, path in [
        (b'"price":10.0', "$.session.cartItems[0].price"),
        (b'"quantity":3', "$.session.cartItems[0].quantity"),
    ]:
        value = raw(VALID).replace(field, field.split(b":")[0] + b":1e400", 1)
        result = decode_event(value)
        assert isinstance(result, Rejected)
        assert result.code == "invalid_event"
        assert path in result.message, result.message


def test_invalid_event_for_too_many_units() -> None:
    cart = [{"sku": f"S{n}", "quantity": 5000, "price": 1.0} for n in range(3)]
    result = decode_event(raw(update("e1", cart_items=cart)))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_event"
    assert "sum of quantities" in result.message
    assert "$.session.cartItems`" in result.message


def test_invalid_event_for_a_cart_whose_total_overflows() -> None:
    cart = [{"sku": "S", "quantity": 2, "price": 1e308}]
    result = decode_event(raw(update("e1", cart_items=cart)))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_event"
    assert "$.session.cartItems`" in result.message


def test_invalid_event_for_deeply_nested_attributes() -> None:
    value: Any = "deep"
    for _ in range(40):
        value = {"a": value}
    result = decode_event(raw(update("e1", attributes=value)))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_event"
    assert "$.session.attributes.a.a" in result.message


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        ([], "$.returnedCartItems"),
        ([{"position": -1}], "$.returnedCartItems[0].position"),
        ([{"position": 0, "quantity": 0}], "$.returnedCartItems[0].quantity"),
        ([{"position": 0, "quantity": None}], "$.returnedCartItems[0].quantity"),
        ([{"quantity": 1}], "$.returnedCartItems[0]"),
        ([{"position": 0}] * 1001, "$.returnedCartItems"),
    ],
)
def test_invalid_return_event(lines: list[dict[str, Any]], named: str) -> None:
    result = decode_event(raw(give_back("r1", lines)))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_event"
    assert named in result.message, result.message


def test_key_mismatch() -> None:
    result = outcome(None, VALID, key="S2")
    assert isinstance(result, Rejected)
    assert result.code == "key_mismatch"
    assert "$.integrationId" in result.message


def test_key_mismatch_comes_before_duplicates() -> None:
    state = apply_all([VALID])
    result = outcome(state, VALID, key="S2")
    assert isinstance(result, Rejected)
    assert result.code == "key_mismatch"


def test_application_mismatch() -> None:
    state = apply_all([VALID])
    result = outcome(state, update("e2", application_id=323, coupon="X"))
    assert isinstance(result, Rejected)
    assert result.code == "application_mismatch"
    assert "$.applicationId" in result.message


def test_session_not_found() -> None:
    result = outcome(None, give_back("r1", [{"position": 0}]))
    assert isinstance(result, Rejected)
    assert result.code == "session_not_found"
    assert "$.integrationId" in result.message


def test_invalid_transition() -> None:
    state = apply_all([VALID, update("e2", state="closed")])
    result = outcome(state, update("e3", state="open"))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_transition"
    assert "$.session.state" in result.message


def test_invalid_transition_of_a_return_names_the_type() -> None:
    result = outcome(apply_all([VALID]), give_back("r1", [{"position": 0}]))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_transition"
    assert "$.type" in result.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("profileId", "p"),
        ("coupon", ""),
        ("referral", "R"),
        ("cartItems", CART),
        ("identifiers", []),
        ("attributes", {}),
        ("discounts", {}),
    ],
)
def test_session_locked(field: str, value: Any) -> None:
    state = apply_all([VALID, update("e2", state="closed")])
    event = update("e3")
    event["session"] = {field: value, "state": "cancelled"}
    result = outcome(state, event)
    assert isinstance(result, Rejected)
    assert result.code == "session_locked"
    assert f"$.session.{field}`" in result.message


CLOSED = [VALID, update("e2", state="closed")]


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        ([{"position": 2}], "$.returnedCartItems[0].position"),
        ([{"position": 0, "quantity": 1}, {"position": 7}], "$.returnedCartItems[1].position"),
        ([{"position": 1, "quantity": 3}], "$.returnedCartItems[0].quantity"),
        (
            [{"position": 0, "quantity": 2}, {"position": 0, "quantity": 2}],
            "$.returnedCartItems[1].quantity",
        ),
        ([{"position": 0, "quantity": 1}, {"position": 0}], "$.returnedCartItems[1]`"),
    ],
)
def test_invalid_return(lines: list[dict[str, int]], named: str) -> None:
    state = apply_all(CLOSED)
    assert state is not None
    before = encode_stored(state)
    result = outcome(state, give_back("r1", lines))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_return"
    assert named in result.message, result.message
    assert encode_stored(state) == before


def test_a_line_without_quantity_on_a_fully_returned_line_is_an_invalid_return() -> None:
    state = apply_all([*CLOSED, give_back("r1", [{"position": 1}])])
    result = outcome(state, give_back("r2", [{"position": 1}]))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_return"
    assert "$.returnedCartItems[0]`" in result.message


def test_a_return_applies_all_of_its_lines() -> None:
    state = apply_all([*CLOSED, give_back("r1", [{"position": 0, "quantity": 1}, {"position": 1}])])
    assert state is not None
    lines = [(i.returned_quantity, i.remaining_quantity) for i in state.session.cart_items]
    assert lines == [(1, 2), (2, 0)]
    assert state.session.total == 20.0


def test_returning_everything_leaves_the_session_partially_returned() -> None:
    state = apply_all([*CLOSED, give_back("r1", [{"position": 0}, {"position": 1}])])
    assert state is not None
    assert state.session.state == "partially_returned"
    assert state.session.total == 0.0
    result = outcome(state, give_back("r2", [{"position": 0, "quantity": 1}]))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_return"


def test_a_rejected_event_is_not_remembered_as_applied() -> None:
    state = apply_all(CLOSED)
    assert isinstance(outcome(state, update("e3", coupon="X")), Rejected)
    assert isinstance(outcome(state, update("e3", state="cancelled")), Applied)


def test_envelope_builder_sanity() -> None:
    # The builders above make valid events unless told otherwise.
    assert not isinstance(
        decode_event(raw(envelope("x", "update", "2026-01-01T00:00:00Z", session={}))), Rejected
    )


def test_every_rejection_code_is_in_the_contract_table() -> None:
    contract = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    table = contract.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == set(get_args(RejectionCode))


def _item(**fields: Any) -> dict[str, Any]:
    return {"cartItems": [{"sku": "A", "quantity": 1, "price": 1.0, **fields}]}


@pytest.mark.parametrize(
    ("session_of", "limit", "path"),
    [
        (lambda text: _item(name=text), 1000, "$.session.cartItems[0].name"),
        (lambda text: _item(category=text), 1000, "$.session.cartItems[0].category"),
        (lambda text: {"attributes": {text: 1}}, 255, "`key` in `$.session.attributes`"),
        (lambda text: {"discounts": {text: 1.0}}, 255, "`key` in `$.session.discounts`"),
        (lambda text: _item(attributes={text: 1}), 255,
         "`key` in `$.session.cartItems[0].attributes`"),
        (lambda text: _item(additionalCosts={text: {"price": 1.0}}), 255,
         "`key` in `$.session.cartItems[0].additionalCosts`"),
    ],
)  # fmt: skip
def test_unbounded_strings_of_an_event_are_bounded(session_of: Any, limit: int, path: str) -> None:
    rejected = decode_event(raw(update("e1", **session_of("x" * (limit + 1)))))
    assert isinstance(rejected, Rejected)
    assert rejected.code == "invalid_event"
    assert path in rejected.message
    assert not isinstance(decode_event(raw(update("e1", **session_of("x" * limit)))), Rejected)
