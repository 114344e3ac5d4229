"""Properties of decode_event + apply_event over random record sequences."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from stream_app.domain import (
    Applied,
    CustomerSession,
    ProfileClaim,
    ProfileVerdict,
    Rejected,
    ReturnEvent,
    Skipped,
    StoredSession,
    UpdateEvent,
    apply_event,
    apply_verdict,
    decide_claim,
    decode_customer_session,
    decode_event,
    decode_stored,
    encode_json,
    encode_stored,
    is_held,
    profile_key,
    published_snapshot,
)

from .builders import decoded, update
from .strategies import events, json_values, sequences

SETTINGS = settings(max_examples=100, deadline=None)
Record = tuple[str | None, bytes]


def formula_total(session: CustomerSession) -> float:
    """The contract's total, computed independently of the core (rounded to 10 decimals)."""
    total = 0.0
    for item in session.cart_items:
        unit = item.price
        if item.additional_costs is not UNSET:
            for cost in item.additional_costs.values():
                unit += cost.price
        total += unit * item.remaining_quantity
    return round(total, 10)


def run(sequence: list[Record], times: int = 1) -> dict[str, StoredSession]:
    """Feed each record `times` times in a row; check invariants after every step."""
    states: dict[str, StoredSession] = {}
    applied: Counter[str] = Counter()
    first_at: dict[str, datetime] = {}
    latest_at: dict[str, datetime] = {}
    for key, value in sequence:
        for _ in range(times):
            event = decode_event(value)
            if isinstance(event, Rejected):
                continue
            integration_id = event.integration_id
            state = states.get(integration_id)
            before = None if state is None else encode_stored(state)
            result = apply_event(state, event, key)
            # Pure: the state given in is never changed, whatever the outcome.
            assert state is None or encode_stored(state) == before
            if isinstance(result, Skipped):
                assert state is not None
                assert event.event_id in state.recent_event_ids
            if not isinstance(result, Applied):
                continue
            applied[integration_id] += 1
            first_at.setdefault(integration_id, event.occurred_at)
            latest_at[integration_id] = max(
                latest_at.get(integration_id, event.occurred_at), event.occurred_at
            )
            session = result.stored.session
            assert session.update_count == applied[integration_id]
            assert session.created == first_at[integration_id]
            assert session.updated == latest_at[integration_id]
            assert session.total == formula_total(session)
            for position, item in enumerate(session.cart_items):
                assert item.position == position
                assert item.remaining_quantity >= 0
                assert item.remaining_quantity == item.quantity - item.returned_quantity
            previous = None if state is None else state.session.state
            if previous == session.state:
                assert result.transition is None
            else:
                assert result.transition is not None
                assert (result.transition.from_state, result.transition.to) == (
                    previous,
                    session.state,
                )
            if result.snapshot is not None:
                assert decode_customer_session(encode_json(result.snapshot)) == result.snapshot
            assert decode_stored(encode_stored(result.stored)) == result.stored
            states[integration_id] = result.stored
    return states


@SETTINGS
@given(sequences())
def test_invariants_hold_and_repeating_each_record_changes_nothing(
    sequence: list[Record],
) -> None:
    """apply never raises nor changes its input (so a rejection changes nothing), totals,
    quantities, counts and timestamps follow the contract, outputs round-trip, and feeding
    every record twice in a row ends in the very same states as feeding it once."""
    once = run(sequence)
    twice = run(sequence, times=2)
    assert {key: encode_stored(state) for key, state in twice.items()} == {
        key: encode_stored(state) for key, state in once.items()
    }


@SETTINGS
@given(st.data())
def test_first_session_is_decided_once_and_never_contradicted(data: st.DataObject) -> None:
    """Sessions take profiles while claims and verdicts travel in any order, some twice.

    Exactly one session per profile is told it is first, every snapshot emitted shows the
    final answer for its profile, published_snapshot is always the last one emitted, and
    once every verdict is in nothing is held back.
    """
    sessions = [f"S{n}" for n in range(data.draw(st.integers(1, 4), label="sessions"))]
    plans = {
        session: data.draw(st.lists(st.sampled_from(["", "p1", "p2"]), min_size=1, max_size=4))
        for session in sessions
    }
    queues = {
        session: [
            update(f"{session}-{n}", integration_id=session, profile_id=profile, coupon=f"c{n}")
            for n, profile in enumerate(plan)
        ]
        for session, plan in plans.items()
    }
    states: dict[str, StoredSession] = {}
    emitted: dict[str, list[CustomerSession]] = {session: [] for session in sessions}
    owners: dict[str, str] = {}
    claims: list[ProfileClaim] = []
    verdicts: list[ProfileVerdict] = []
    told_first: dict[str, set[str]] = {}
    while any(queues.values()) or claims or verdicts:
        steps = [("event", session) for session in sessions if queues[session]]
        steps += [("claim", "")] * bool(claims) + [("verdict", "")] * bool(verdicts)
        step, session = data.draw(st.sampled_from(steps))
        if step == "event":
            result = apply_event(states.get(session), decoded(queues[session].pop(0)), session)
            assert isinstance(result, Applied)
            states[session] = result.stored
            if result.snapshot is not None:
                emitted[session].append(result.snapshot)
            if result.claim is not None:
                claims.append(result.claim)
        elif step == "claim":
            claim = claims.pop(data.draw(st.integers(0, len(claims) - 1)))
            key = profile_key(claim.application_id, claim.profile_id)
            owners[key], verdict = decide_claim(owners.get(key), claim)
            verdicts.append(verdict)
            if verdict.is_first:
                told_first.setdefault(key, set()).add(verdict.integration_id)
            if data.draw(st.booleans()):
                claims.append(claim)  # redelivered
        else:
            verdict = verdicts.pop(data.draw(st.integers(0, len(verdicts) - 1)))
            state, released = apply_verdict(states[verdict.integration_id], verdict)
            states[verdict.integration_id] = state
            if released is not None:
                emitted[verdict.integration_id].append(released)
        for name, state in states.items():
            last = emitted[name][-1] if emitted[name] else None
            assert published_snapshot(state) == last
    for key, firsts in told_first.items():
        assert firsts == {owners[key]}
    for name, state in states.items():
        assert not is_held(state)
        assert emitted[name][-1] == state.session
        for snapshot in emitted[name]:
            if snapshot.profile_id == "":
                assert snapshot.first_session is True
            else:
                key = profile_key(snapshot.application_id, snapshot.profile_id)
                assert snapshot.first_session is (owners[key] == name)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected(value: bytes) -> None:
    assert isinstance(decode_event(value), Rejected)


@SETTINGS
@given(events, st.data())
def test_mutated_events_decode_to_an_event_or_a_rejection(
    event: dict[str, object], data: st.DataObject
) -> None:
    mutated = bytearray(msgspec.json.encode(event))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated)))
        match data.draw(st.sampled_from(["insert", "delete", "replace"])):
            case "insert":
                mutated[position:position] = data.draw(st.binary(min_size=1, max_size=3))
            case "delete":
                del mutated[position : position + data.draw(st.integers(1, 5))]
            case _:
                mutated[position : position + 1] = data.draw(st.binary(min_size=1, max_size=1))
    result = decode_event(bytes(mutated))
    assert isinstance(result, UpdateEvent | ReturnEvent | Rejected)
    if not isinstance(result, Rejected):
        apply_event(None, result, None)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["eventId", "type", "integrationId", "applicationId", "occurredAt"]),
        json_values,
    ),
    st.sampled_from([{}, {"session": {}}, {"returnedCartItems": [{"position": 0}]}]),
)
def test_any_json_object_decodes_to_an_event_or_a_rejection(
    fields: dict[str, object], body: dict[str, object]
) -> None:
    result = decode_event(msgspec.json.encode({**body, **fields}))
    assert isinstance(result, UpdateEvent | ReturnEvent | Rejected)
