"""Applying a decoded event to a session's state (contract sections 3-5); pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET

from stream_app.domain.events import CartItemInput, Event, ReturnEvent, SessionPatch, UpdateEvent
from stream_app.domain.outcomes import Applied, Rejected, Skipped
from stream_app.domain.outputs import CartItem, CustomerSession, SessionStatus, Transition
from stream_app.domain.pricing import cart_total
from stream_app.domain.profiles import ProfileClaim
from stream_app.domain.stored import RECENT_EVENT_IDS, StoredSession, published_snapshot

_replace = msgspec.structs.replace

# Fields a session that is not open refuses to change (contract 4.8), as (python, wire) names.
_LOCKED_FIELDS = tuple(
    (field.name, field.encode_name)
    for field in msgspec.structs.fields(SessionPatch)
    if field.name != "state"
)
_RETURNABLE: frozenset[SessionStatus] = frozenset({"closed", "partially_returned"})


def apply_event(
    state: StoredSession | None, event: Event, key: str | None
) -> Applied | Skipped | Rejected:
    """Apply an event to a session's state (None if unknown), deciding as in contract 4.

    Never raises for a decoded event. A return line without a quantity returns every unit
    still remaining on its line as of before the event; such a line on a line with nothing
    left is rejected (invalid_return), as every return line must return at least one unit.
    """
    if key is not None and key != event.integration_id:
        return Rejected(
            "key_mismatch",
            f"integrationId {event.integration_id!r} differs from the record key {key!r}"
            " - at `$.integrationId`",
        )
    if state is None:
        match event:
            case UpdateEvent():
                return _create(event)
            case ReturnEvent():
                return Rejected(
                    "session_not_found",
                    f"No session {event.integration_id!r} to return items of"
                    " - at `$.integrationId`",
                )
    if event.event_id in state.recent_event_ids:
        return Skipped()
    if event.application_id != state.session.application_id:
        return Rejected(
            "application_mismatch",
            f"The session belongs to applicationId {state.session.application_id},"
            f" not {event.application_id} - at `$.applicationId`",
        )
    match event:
        case UpdateEvent():
            return _update(state, event)
        case ReturnEvent():
            return _return(state, event)


def _create(event: UpdateEvent) -> Applied | Rejected:
    if event.session.state == "cancelled":
        return Rejected(
            "invalid_transition", "A new session cannot be cancelled - at `$.session.state`"
        )
    at = event.occurred_at
    blank = CustomerSession(
        integration_id=event.integration_id,
        application_id=event.application_id,
        created=at,
        updated=at,
        profile_id="",
        coupon="",
        referral="",
        state="open",
        cart_items=[],
        identifiers=[],
        attributes={},
        discounts={},
        total=0.0,
        first_session=True,
        update_count=0,
    )
    return _finish(None, event, _patched(blank, event.session, at))


def _update(state: StoredSession, event: UpdateEvent) -> Applied | Rejected:
    current = state.session.state
    patch = event.session
    if current != "open":
        for name, wire_name in _LOCKED_FIELDS:
            if getattr(patch, name) is not UNSET:
                return Rejected(
                    "session_locked",
                    f"The session is {current}; an update may only set `state`"
                    f" - at `$.session.{wire_name}`",
                )
        if current == "cancelled" or patch.state != "cancelled":
            wanted = "no state" if patch.state is UNSET else repr(patch.state)
            return Rejected(
                "invalid_transition",
                f"The session is {current}; an update with {wanted} is not allowed"
                " - at `$.session.state`",
            )
    return _finish(state, event, _patched(state.session, patch, event.occurred_at))


def _patched(session: CustomerSession, patch: SessionPatch, at: datetime) -> CustomerSession:
    """The session with an (allowed) update applied; firstSession is settled by _finish."""
    cart_items, total = session.cart_items, session.total
    if patch.cart_items is not UNSET:
        # A new cart is a new cart: nothing of it has been returned yet.
        cart_items = [_cart_line(position, item) for position, item in enumerate(patch.cart_items)]
        total = cart_total(cart_items)
    identifiers = session.identifiers
    if patch.identifiers is not UNSET:
        identifiers = list(dict.fromkeys(patch.identifiers))
    attributes = session.attributes
    if patch.attributes is not UNSET:
        attributes = _merged(attributes, patch.attributes)
    return CustomerSession(
        integration_id=session.integration_id,
        application_id=session.application_id,
        created=session.created,
        # The latest occurredAt, not the last; a comparison costs less than a call to max().
        updated=at if at > session.updated else session.updated,
        profile_id=session.profile_id if patch.profile_id is UNSET else patch.profile_id,
        coupon=session.coupon if patch.coupon is UNSET else patch.coupon,
        referral=session.referral if patch.referral is UNSET else patch.referral,
        state=session.state if patch.state is UNSET else patch.state,
        cart_items=cart_items,
        identifiers=identifiers,
        attributes=attributes,
        discounts=session.discounts if patch.discounts is UNSET else patch.discounts,
        total=total,
        first_session=session.first_session,
        update_count=session.update_count + 1,
    )


def _cart_line(position: int, item: CartItemInput) -> CartItem:
    return CartItem(
        sku=item.sku,
        quantity=item.quantity,
        price=item.price,
        name=item.name,
        category=item.category,
        weight=item.weight,
        height=item.height,
        width=item.width,
        length=item.length,
        attributes=item.attributes,
        additional_costs=item.additional_costs,
        position=position,
        returned_quantity=0,
        remaining_quantity=item.quantity,
    )


def _merged(attributes: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = {**attributes, **patch}
    for name, value in patch.items():
        if value is None:
            del merged[name]
    return merged


def _return(state: StoredSession, event: ReturnEvent) -> Applied | Rejected:
    session = state.session
    if session.state not in _RETURNABLE:
        return Rejected(
            "invalid_transition",
            f"The session is {session.state}; only a closed session can take returns - at `$.type`",
        )
    items = session.cart_items
    returned: dict[int, int] = {}
    for index, line in enumerate(event.returned_cart_items):
        # Paths are built only for a rejection: most returns are valid.
        if line.position >= len(items):
            return Rejected(
                "invalid_return",
                f"Position {line.position} does not exist, the cart has {len(items)} lines"
                f" - at `$.returnedCartItems[{index}].position`",
            )
        remaining = items[line.position].remaining_quantity
        if line.quantity is UNSET:
            if remaining == 0:
                return Rejected(
                    "invalid_return",
                    f"Line {line.position} has nothing left to return"
                    f" - at `$.returnedCartItems[{index}]`",
                )
            quantity = remaining
        else:
            quantity = line.quantity
        wanted = returned.get(line.position, 0) + quantity
        if wanted > remaining:
            field = "" if line.quantity is UNSET else ".quantity"
            return Rejected(
                "invalid_return",
                f"Returns {wanted} units of line {line.position} but {remaining} remain"
                f" - at `$.returnedCartItems[{index}]{field}`",
            )
        returned[line.position] = wanted
    new_items = list(items)
    for position, quantity in returned.items():
        item = items[position]
        new_items[position] = _replace(
            item,
            returned_quantity=item.returned_quantity + quantity,
            remaining_quantity=item.remaining_quantity - quantity,
        )
    at = event.occurred_at
    returned_session = _replace(
        session,
        state="partially_returned",
        cart_items=new_items,
        total=cart_total(new_items),
        updated=at if at > session.updated else session.updated,
        update_count=session.update_count + 1,
    )
    return _finish(state, event, returned_session)


def _finish(state: StoredSession | None, event: Event, session: CustomerSession) -> Applied:
    """Settle firstSession, remember the eventId, and work out what to emit."""
    claims = {} if state is None else state.claims
    claim = None
    profile_id = session.profile_id
    if profile_id and profile_id not in claims:
        claims = {**claims, profile_id: None}
        claim = ProfileClaim(session.application_id, profile_id, session.integration_id)
    first = True if not profile_id else claims[profile_id]
    if state is None:
        recent = [event.event_id]
    else:
        # One copy (the state is immutable), then an append: the list is never copied twice.
        recent = state.recent_event_ids[1 - RECENT_EVENT_IDS :]
        recent.append(event.event_id)
    if first is None:
        # Held back until the verdict: remember what GET /sessions should keep answering.
        published = None if state is None else published_snapshot(state)
        new_state = StoredSession(session, recent, claims, published)
        snapshot = None
    else:
        if session.first_session is not first:
            session = _replace(session, first_session=first)
        new_state = StoredSession(session, recent, claims, None)
        snapshot = session
    previous: SessionStatus | None = None if state is None else state.session.state
    transition = None
    if previous != session.state:
        transition = Transition(
            integration_id=session.integration_id,
            application_id=session.application_id,
            profile_id=session.profile_id,
            from_state=previous,
            to=session.state,
            at=event.occurred_at,
            event_id=event.event_id,
            total=session.total,
        )
    return Applied(new_state, snapshot, transition, claim)
