"""What a workload should produce, worked out with the pure core (verdicts answered at once).

The latency benchmark matches every snapshot it sees to the input record that produced it by
(integrationId, updateCount): the n-th applied event of a session yields updateCount n, and a
snapshot released after a firstSession verdict carries the updateCount of the latest applied
event, so it is matched to that event. The throughput benchmark uses the counts to check that
the worker applied and rejected exactly what the core says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from stream_app.domain import (
    Applied,
    Rejected,
    SessionState,
    Skipped,
    apply_event,
    apply_verdict,
    decide_claim,
    decode_event,
    decode_key,
    profile_key,
)

SnapshotKey = tuple[str, int]


@dataclass
class Expected:
    """Per input record: the snapshot key its application yields (None if not applied)."""

    snapshot_keys: list[SnapshotKey | None] = field(default_factory=list)
    #: Records whose snapshot the worker holds back until a verdict (they claim a profile).
    claiming: set[int] = field(default_factory=set)
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    sessions: int = 0


def expected_outputs(records: Iterable[tuple[str | bytes | None, bytes]]) -> Expected:
    """Apply every record with the pure core, as one worker would (verdicts arrive at once)."""
    states: dict[str, SessionState] = {}
    owners: dict[str, str] = {}
    result = Expected()
    for index, (key, raw) in enumerate(records):
        event = decode_event(raw)
        if isinstance(event, Rejected):
            result.rejected += 1
            result.snapshot_keys.append(None)
            continue
        raw_key = key.encode() if isinstance(key, str) else key
        outcome = apply_event(states.get(event.integration_id), event, decode_key(raw_key))
        if isinstance(outcome, Skipped):
            result.duplicates += 1
            result.snapshot_keys.append(None)
            continue
        if isinstance(outcome, Rejected):
            result.rejected += 1
            result.snapshot_keys.append(None)
            continue
        assert isinstance(outcome, Applied)
        result.applied += 1
        state = outcome.state
        result.snapshot_keys.append((event.integration_id, state.session.update_count))
        if outcome.snapshot is None:
            result.claiming.add(index)
        if outcome.claim is not None:
            claim = outcome.claim
            owner_key = profile_key(claim.application_id, claim.profile_id)
            owner, verdict = decide_claim(owners.get(owner_key), claim)
            owners[owner_key] = owner
            state, _ = apply_verdict(state, verdict)
        states[event.integration_id] = state
    result.sessions = len(states)
    return result
