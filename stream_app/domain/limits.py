"""How large a session may grow (contract 4, rule 10); pure."""

from __future__ import annotations

from stream_app.domain.outcomes import Rejected


def session_too_large(stored_bytes: int, snapshot_bytes: int, limit: int) -> Rejected | None:
    """The rejection of an event that would make its session larger than `limit` bytes.

    Both forms count: the stored state (the table and its changelog record) and the snapshot
    (the output record). The session keeps its previous state.
    """
    largest, form = max((stored_bytes, "stored"), (snapshot_bytes, "as a snapshot"))
    if largest <= limit:
        return None
    return Rejected(
        "session_too_large",
        f"The session would be {largest:,} bytes {form}, over the limit of {limit:,}; "
        "it keeps its previous state - at `$`",
    )
