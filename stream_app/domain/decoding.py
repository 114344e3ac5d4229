"""The input boundary: raw record bytes become an Event or a Rejected, and nothing raises."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

import msgspec
from msgspec import UNSET

from stream_app.domain.events import (
    MAX_CART_QUANTITY,
    MAX_INT,
    MIN_INT,
    CartItemInput,
    Event,
    SessionPatch,
    UpdateEvent,
)
from stream_app.domain.outcomes import Rejected, RejectionCode
from stream_app.domain.pricing import unit_price

# Attribute values are free-form JSON; bound their nesting so storing and encoding them can
# never run out of stack, whatever depth the worker's own call stack is at.
MAX_ATTRIBUTE_DEPTH = 32

_event_decoder = msgspec.json.Decoder(Event)
# Only the syntax matters to it: numbers no double can hold (1e400) are kept as their text.
_syntax_decoder = msgspec.json.Decoder(float_hook=str)


class _Invalid(Exception):
    """A hand-made check failed somewhere inside an attribute value; collects its path."""

    def __init__(self, code: RejectionCode, rule: str) -> None:
        super().__init__(rule)
        self.code: RejectionCode = code
        self.rule = rule
        self.segments: list[str] = []  # innermost first

    def rejected(self, prefix: str) -> Rejected:
        path = prefix + "".join(reversed(self.segments))
        return Rejected(self.code, f"{self.rule} - at `{path}`")


def decode_event(raw: bytes) -> Event | Rejected:
    """Decode and validate one input record value (contract 2); never raises."""
    # msgspec does not check UTF-8 inside values it skips (unknown fields), so check it all.
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError as exc:
            return Rejected("malformed_json", f"Invalid UTF-8 at byte {exc.start}")
    try:
        event: Event = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return _not_an_object(raw) or Rejected("invalid_event", _with_path(str(exc)))
    except msgspec.DecodeError as exc:
        return Rejected("malformed_json", str(exc))
    except RecursionError:
        return Rejected("malformed_json", "JSON is nested too deeply")
    if isinstance(event, UpdateEvent):
        rejected = _check_patch(event.session)
        if rejected is not None:
            return rejected
    if event.occurred_at.tzinfo is UTC:
        return event
    try:
        occurred_at = event.occurred_at.astimezone(UTC)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+01:00, which is in year 0 in UTC
        return Rejected(
            "invalid_event", "Expected a time between years 1 and 9999 in UTC - at `$.occurredAt`"
        )
    return msgspec.structs.replace(event, occurred_at=occurred_at)


def decode_key(raw: bytes | None) -> str | None:
    """Decode a record key; bytes that are not UTF-8 are kept visible as backslash escapes."""
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _not_an_object(raw: bytes) -> Rejected | None:
    """Tell malformed JSON apart from a well-formed event that breaks a rule (contract 4.1)."""
    # msgspec stops at the first type error, so the document may still be malformed further on.
    try:
        value = _syntax_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return Rejected("malformed_json", str(exc))
    except RecursionError:
        return Rejected("malformed_json", "JSON is nested too deeply")
    if not isinstance(value, dict):
        return Rejected("malformed_json", f"Expected a JSON object, got `{_json_type(value)}`")
    return None


def _with_path(message: str) -> str:
    # msgspec names no path for the top level, e.g. for a missing required field.
    return message if " - at `" in message else f"{message} - at `$`"


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "bool"
        case int():
            return "int"
        case float():
            return "float"
        case str():
            return "str"
        case list():
            return "array"
        case _:
            return "object"


def _check_patch(patch: SessionPatch) -> Rejected | None:
    """Rules of an update's `session` that msgspec constraints cannot express."""
    if patch.cart_items is not UNSET:
        rejected = _check_cart(patch.cart_items)
        if rejected is not None:
            return rejected
    if patch.attributes is not UNSET:
        try:
            _check_object(patch.attributes, 1)
        except _Invalid as exc:
            return exc.rejected("$.session.attributes")
    return None


def _check_cart(items: list[CartItemInput]) -> Rejected | None:
    quantity = 0
    total = 0.0
    for index, item in enumerate(items):
        quantity += item.quantity
        total += unit_price(item) * item.quantity
        if item.attributes is not UNSET:
            try:
                _check_object(item.attributes, 1)
            except _Invalid as exc:
                return exc.rejected(f"$.session.cartItems[{index}].attributes")
    if quantity > MAX_CART_QUANTITY:
        return Rejected(
            "invalid_event",
            f"Expected the sum of quantities to be <= {MAX_CART_QUANTITY}, got {quantity}"
            " - at `$.session.cartItems`",
        )
    # Each price is finite, but a big enough cart can still add up to infinity.
    if not math.isfinite(total):
        return Rejected(
            "invalid_event",
            "Expected the cart's total to be a finite number - at `$.session.cartItems`",
        )
    return None


def _check_object(value: dict[str, Any], depth: int) -> None:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise _Invalid("invalid_event", f"Expected at most {MAX_ATTRIBUTE_DEPTH} levels of nesting")
    for key, item in value.items():
        try:
            _check_value(item, depth)
        except _Invalid as exc:
            exc.segments.append(f".{key}" if key.isidentifier() else f"[{_quote(key)}]")
            raise


def _check_array(value: list[Any], depth: int) -> None:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise _Invalid("invalid_event", f"Expected at most {MAX_ATTRIBUTE_DEPTH} levels of nesting")
    for index, item in enumerate(value):
        try:
            _check_value(item, depth)
        except _Invalid as exc:
            exc.segments.append(f"[{index}]")
            raise


def _check_value(value: Any, depth: int) -> None:
    kind = type(value)
    if kind is int:
        if not MIN_INT <= value <= MAX_INT:
            raise _Invalid("invalid_event", f"Expected `int` >= {MIN_INT} and <= {MAX_INT}")
    elif kind is dict:
        _check_object(value, depth + 1)
    elif kind is list:
        _check_array(value, depth + 1)


def _quote(key: str) -> str:
    return msgspec.json.encode(key).decode()
