"""Input events (contract section 2) as frozen msgspec Structs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

MAX_CART_ITEMS = 1000
MAX_CART_QUANTITY = 10_000
MAX_IDENTIFIERS = 100
MAX_RETURN_LINES = 1000
# msgpack (the state store's format) cannot hold integers outside this range.
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1

EventId = Annotated[str, Meta(min_length=1, max_length=255)]
IntegrationId = Annotated[str, Meta(min_length=1, max_length=1000)]
ApplicationId = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Timestamp = Annotated[datetime, Meta(tz=True)]
NonNegative = Annotated[float, Meta(ge=0)]
ProfileId = Annotated[str, Meta(max_length=1000)]
Code = Annotated[str, Meta(max_length=100)]
Identifier = Annotated[str, Meta(min_length=1, max_length=1000)]
Sku = Annotated[str, Meta(min_length=1, max_length=1000)]
#: Free text of a cart item (name, category).
ItemText = Annotated[str, Meta(max_length=1000)]
#: A key of attributes (session and cart item), discounts and additional costs.
MapKey = Annotated[str, Meta(max_length=255)]
Quantity = Annotated[int, Meta(ge=1, le=MAX_CART_QUANTITY)]
RequestedState = Literal["open", "closed", "cancelled"]


# gc=False on every Struct here: they hold only decoded values and other such Structs, so they
# can never be part of a reference cycle, and untracked they cost the cycle collector nothing.
class AdditionalCost(Struct, frozen=True, gc=False):
    """An extra cost charged per unit of a cart item (e.g. shipping)."""

    price: NonNegative


class CartItemInput(Struct, frozen=True, gc=False, rename="camel"):
    """A cart item as sent in an update; optional fields stay UNSET when not given."""

    sku: Sku
    quantity: Quantity
    price: NonNegative
    name: ItemText | UnsetType = UNSET
    category: ItemText | UnsetType = UNSET
    weight: NonNegative | UnsetType = UNSET
    height: NonNegative | UnsetType = UNSET
    width: NonNegative | UnsetType = UNSET
    length: NonNegative | UnsetType = UNSET
    attributes: dict[MapKey, Any] | UnsetType = UNSET
    additional_costs: dict[MapKey, AdditionalCost] | UnsetType = UNSET


class SessionPatch(Struct, frozen=True, gc=False, rename="camel"):
    """The `session` object of an update; an UNSET field leaves the session unchanged."""

    profile_id: ProfileId | UnsetType = UNSET
    coupon: Code | UnsetType = UNSET
    referral: Code | UnsetType = UNSET
    state: RequestedState | UnsetType = UNSET
    cart_items: Annotated[list[CartItemInput], Meta(max_length=MAX_CART_ITEMS)] | UnsetType = UNSET
    identifiers: Annotated[list[Identifier], Meta(max_length=MAX_IDENTIFIERS)] | UnsetType = UNSET
    attributes: dict[MapKey, Any] | UnsetType = UNSET
    discounts: dict[MapKey, float] | UnsetType = UNSET


class ReturnLine(Struct, frozen=True, gc=False):
    """One line of a return; an UNSET quantity means every remaining unit of the line."""

    position: Annotated[int, Meta(ge=0)]
    quantity: Annotated[int, Meta(ge=1)] | UnsetType = UNSET


class _EventBase(Struct, frozen=True, gc=False, rename="camel", tag_field="type"):
    """Fields common to every event."""

    event_id: EventId
    integration_id: IntegrationId
    application_id: ApplicationId
    occurred_at: Timestamp


class UpdateEvent(_EventBase, frozen=True, gc=False, tag="update"):
    """Creates a session or changes it (`type` = "update")."""

    session: SessionPatch


class ReturnEvent(_EventBase, frozen=True, gc=False, tag="return"):
    """Returns units of a closed session's cart lines (`type` = "return")."""

    returned_cart_items: Annotated[
        list[ReturnLine], Meta(min_length=1, max_length=MAX_RETURN_LINES)
    ]


Event = UpdateEvent | ReturnEvent
