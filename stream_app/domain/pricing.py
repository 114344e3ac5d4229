"""How much a cart costs: the one definition of `total`."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import UNSET

from stream_app.domain.events import CartItemInput
from stream_app.domain.outputs import CartItem

# Totals are rounded so float noise (0.1 + 0.2 = 0.30000000000000004) never reaches the wire.
TOTAL_DECIMALS = 10


def unit_price(item: CartItemInput) -> float:
    """Price of one unit of a cart item: its price plus all of its additional costs."""
    price = item.price
    if item.additional_costs is not UNSET:
        for cost in item.additional_costs.values():
            price += cost.price
    return price


def cart_total(items: Iterable[CartItem]) -> float:
    """Sum over the lines, in order, of unit_price x remainingQuantity, rounded to 10 decimals."""
    total = 0.0
    for item in items:
        total += unit_price(item) * item.remaining_quantity
    return round(total, TOTAL_DECIMALS)
