"""firstSession (contract section 5): profile claims, their verdicts, and releasing held snapshots.

A session claims (applicationId, profileId) when an applied event first gives it that profile.
The claim travels, keyed by profile_key, to whoever owns that profile; decide_claim makes the
first claimant the owner for good, and the verdict travels back to the claiming session.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct

from stream_app.domain.outputs import CustomerSession
from stream_app.domain.stored import StoredSession


# gc=False on every Struct here: they hold only decoded values and other such Structs, so they
# can never be part of a reference cycle, and untracked they cost the cycle collector nothing.
class ProfileClaim(Struct, frozen=True, gc=False, rename="camel"):
    """A session's claim to be the first session of (applicationId, profileId)."""

    application_id: int
    profile_id: str
    integration_id: str


class ProfileVerdict(Struct, frozen=True, gc=False, rename="camel"):
    """The answer to a claim: whether the claiming session is the profile's first session."""

    application_id: int
    profile_id: str
    integration_id: str
    is_first: bool


def profile_key(application_id: int, profile_id: str) -> str:
    """The key of a profile; unambiguous since an applicationId is all digits."""
    return f"{application_id}:{profile_id}"


def decide_claim(owner: str | None, claim: ProfileClaim) -> tuple[str, ProfileVerdict]:
    """Answer a claim given the profile's current owner; the first claimant owns it for good."""
    new_owner = claim.integration_id if owner is None else owner
    verdict = ProfileVerdict(
        application_id=claim.application_id,
        profile_id=claim.profile_id,
        integration_id=claim.integration_id,
        is_first=new_owner == claim.integration_id,
    )
    return new_owner, verdict


def apply_verdict(
    state: StoredSession, verdict: ProfileVerdict
) -> tuple[StoredSession, CustomerSession | None]:
    """Record a verdict; returns the held snapshot to emit if it was the one being waited for.

    A verdict for another session, for a profile this session never claimed, or one that was
    already recorded changes nothing (so redelivery is harmless).
    """
    session = state.session
    if (
        verdict.integration_id != session.integration_id
        or verdict.application_id != session.application_id
        or verdict.profile_id not in state.claims
        or state.claims[verdict.profile_id] is not None
    ):
        return state, None
    claims = {**state.claims, verdict.profile_id: verdict.is_first}
    if session.profile_id != verdict.profile_id:
        # The session moved on to another profile; only remember the answer.
        return msgspec.structs.replace(state, claims=claims), None
    released = msgspec.structs.replace(session, first_session=verdict.is_first)
    new_state = msgspec.structs.replace(state, session=released, claims=claims, published=None)
    return new_state, released
