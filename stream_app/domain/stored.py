"""What the worker stores per session (its table's value), and what is published of it."""

from __future__ import annotations

from msgspec import Struct

from stream_app.domain.outputs import CustomerSession

RECENT_EVENT_IDS = 1000


# gc=False: it holds only decoded values and Structs, so it can never be part of a reference
# cycle, and untracked it costs the cycle collector nothing (the worker keeps many of them).
class StoredSession(Struct, frozen=True, gc=False, rename="camel", omit_defaults=True):
    """A session's stored state: current session, dedup memory, profile claims, last emitted."""

    # The session after every applied event. While held, its firstSession is a stale value
    # (the last one decided, or true if none was): only published_snapshot is shown to anyone.
    session: CustomerSession
    # Applied eventIds, oldest first, at most RECENT_EVENT_IDS of them.
    recent_event_ids: list[str]
    # profileId -> whether this session is its first session; None while the verdict is pending.
    claims: dict[str, bool | None]
    # Only set while snapshots are held back: the last snapshot that was emitted, if any.
    published: CustomerSession | None = None


def is_held(state: StoredSession) -> bool:
    """Whether the session's snapshots are held back until its profile's verdict arrives."""
    profile_id = state.session.profile_id
    return profile_id != "" and state.claims.get(profile_id) is None


def published_snapshot(state: StoredSession) -> CustomerSession | None:
    """The latest snapshot emitted for the session, i.e. what GET /sessions answers."""
    return state.published if is_held(state) else state.session
