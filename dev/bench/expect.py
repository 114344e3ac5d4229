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

from dev.harness.replay import InputRecord, replay
from stream_app.domain import Applied, Rejected, Skipped

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
    """Replay every record as one worker would, with verdicts answered at once."""
    inputs = InputRecord.numbered(records)
    result = Expected(snapshot_keys=[None] * len(inputs))
    sessions: set[str] = set()
    for step in replay(inputs, answer_claims=True):
        index = step.record.offset  # the position in `records` (key-less ones come last)
        outcome = step.outcome
        if isinstance(outcome, Skipped):
            result.duplicates += 1
        elif isinstance(outcome, Rejected):
            result.rejected += 1
        if not isinstance(outcome, Applied):
            continue
        result.applied += 1
        session = outcome.stored.session
        sessions.add(session.integration_id)
        result.snapshot_keys[index] = (session.integration_id, session.update_count)
        if outcome.snapshot is None:
            result.claiming.add(index)
    result.sessions = len(sessions)
    return result
