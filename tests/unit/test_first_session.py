"""firstSession: claims, verdicts and held snapshots (contract section 5)."""

from __future__ import annotations

from typing import Any

from stream_app.domain import (
    Applied,
    ProfileClaim,
    ProfileVerdict,
    StoredSession,
    apply_verdict,
    decide_claim,
    decode_claim,
    decode_verdict,
    encode_claim,
    encode_stored,
    encode_verdict,
    is_held,
    profile_key,
    published_snapshot,
)

from .builders import CART, outcome, update


def _apply(state: StoredSession | None, event: dict[str, Any]) -> Applied:
    result = outcome(state, event)
    assert isinstance(result, Applied), result
    return result


def _verdict(profile_id: str, is_first: bool, integration_id: str = "S1") -> ProfileVerdict:
    return ProfileVerdict(
        application_id=322, profile_id=profile_id, integration_id=integration_id, is_first=is_first
    )


def test_anonymous_sessions_are_first_sessions() -> None:
    result = _apply(None, update("e1", profile_id="", cart_items=CART))
    assert result.claim is None
    assert result.snapshot is not None
    assert result.snapshot.first_session is True


def test_a_session_created_with_a_profile_is_held_until_its_verdict() -> None:
    result = _apply(None, update("e1", profile_id="p1"))
    assert result.snapshot is None
    assert result.claim == ProfileClaim(application_id=322, profile_id="p1", integration_id="S1")
    assert is_held(result.stored)
    assert published_snapshot(result.stored) is None
    state, released = apply_verdict(result.stored, _verdict("p1", False))
    assert released is not None
    assert released.first_session is False
    assert released.update_count == 1
    assert state.published is None
    assert published_snapshot(state) == released


def test_while_held_the_last_emitted_snapshot_stays_published() -> None:
    first = _apply(None, update("e1"))
    held = _apply(first.stored, update("e2", profile_id="p1"))
    assert held.snapshot is None
    later = _apply(held.stored, update("e3", coupon="C"))
    assert later.snapshot is None
    assert later.claim is None  # p1 is already claimed
    assert published_snapshot(later.stored) == first.snapshot
    _, released = apply_verdict(later.stored, _verdict("p1", True))
    assert released is not None
    assert (released.coupon, released.profile_id, released.update_count) == ("C", "p1", 3)
    assert released.first_session is True


def test_repeated_or_foreign_verdicts_change_nothing() -> None:
    held = _apply(None, update("e1", profile_id="p1"))
    for verdict in [
        _verdict("p2", True),
        _verdict("p1", True, integration_id="S2"),
        ProfileVerdict(application_id=323, profile_id="p1", integration_id="S1", is_first=True),
    ]:
        state, released = apply_verdict(held.stored, verdict)
        assert released is None
        assert encode_stored(state) == encode_stored(held.stored)
    state, released = apply_verdict(held.stored, _verdict("p1", False))
    assert released is not None
    again, nothing = apply_verdict(state, _verdict("p1", True))
    assert nothing is None
    assert again == state


def test_switching_profiles_while_held() -> None:
    held = _apply(None, update("e1", profile_id="p1"))
    switched = _apply(held.stored, update("e2", profile_id="p2"))
    assert switched.snapshot is None
    assert switched.claim is not None
    assert switched.claim.profile_id == "p2"
    # The verdict for p1 is recorded but the session now waits for p2.
    state, released = apply_verdict(switched.stored, _verdict("p1", True))
    assert released is None
    assert state.claims == {"p1": True, "p2": None}
    # Going back to p1, whose answer is known, emits at once.
    back = _apply(state, update("e3", profile_id="p1"))
    assert back.claim is None
    assert back.snapshot is not None
    assert back.snapshot.first_session is True
    # The late p2 verdict only gets remembered.
    final, released = apply_verdict(back.stored, _verdict("p2", False))
    assert released is None
    assert final.claims == {"p1": True, "p2": False}
    assert published_snapshot(final) == back.snapshot


def test_a_decided_profile_is_never_claimed_again() -> None:
    held = _apply(None, update("e1", profile_id="p1"))
    state, _ = apply_verdict(held.stored, _verdict("p1", False))
    anonymous = _apply(state, update("e2", profile_id=""))
    assert anonymous.snapshot is not None
    assert anonymous.snapshot.first_session is True
    again = _apply(anonymous.stored, update("e3", profile_id="p1"))
    assert again.claim is None
    assert again.snapshot is not None
    assert again.snapshot.first_session is False


def test_first_claim_wins_and_deciding_is_idempotent() -> None:
    claim_a = ProfileClaim(application_id=1, profile_id="p", integration_id="A")
    claim_b = ProfileClaim(application_id=1, profile_id="p", integration_id="B")
    owner, verdict = decide_claim(None, claim_a)
    assert (owner, verdict.is_first, verdict.integration_id) == ("A", True, "A")
    owner, verdict = decide_claim(owner, claim_b)
    assert (owner, verdict.is_first, verdict.integration_id) == ("A", False, "B")
    owner, verdict = decide_claim(owner, claim_a)
    assert (owner, verdict.is_first) == ("A", True)


def test_profile_keys_are_unambiguous() -> None:
    assert profile_key(1, "2:x") != profile_key(12, "x")
    assert profile_key(322, "customer-7") == "322:customer-7"


def test_claims_and_verdicts_round_trip_as_camel_case_json() -> None:
    claim = ProfileClaim(application_id=1, profile_id="p", integration_id="A")
    assert encode_claim(claim) == b'{"applicationId":1,"profileId":"p","integrationId":"A"}'
    assert decode_claim(encode_claim(claim)) == claim
    verdict = _verdict("p", True)
    assert b'"isFirst":true' in encode_verdict(verdict)
    assert decode_verdict(encode_verdict(verdict)) == verdict
