"""Output records (contract section 3): session snapshots and state transitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import Struct

from stream_app.domain.events import CartItemInput

SessionStatus = Literal["open", "closed", "cancelled", "partially_returned"]


# gc=False on every Struct here: they hold only decoded values and other such Structs, so they
# can never be part of a reference cycle, and untracked they cost the cycle collector nothing.
class CartItem(CartItemInput, frozen=True, gc=False, kw_only=True):
    """A cart line as emitted: the input item plus its derived fields."""

    position: int
    returned_quantity: int
    remaining_quantity: int


class CustomerSession(Struct, frozen=True, gc=False, rename="camel"):
    """The session snapshot; every field is always present on the wire."""

    integration_id: str
    application_id: int
    created: datetime
    updated: datetime
    profile_id: str
    coupon: str
    referral: str
    state: SessionStatus
    cart_items: list[CartItem]
    identifiers: list[str]
    attributes: dict[str, Any]
    discounts: dict[str, float]
    total: float
    first_session: bool
    update_count: int


class Transition(Struct, frozen=True, gc=False, rename="camel"):
    """A change of session state; `from` is null when the session was created."""

    integration_id: str
    application_id: int
    profile_id: str
    from_state: SessionStatus | None = msgspec.field(name="from")
    to: SessionStatus
    at: datetime
    event_id: str
    total: float
