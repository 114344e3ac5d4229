"""The statistics a worker must publish, computed offline from a replay of its input.

`expected_stats` goes through the replay's steps in the order the worker applies them (per
partition, in offset order) and applies the same rules as the worker: each applied event
counts in its application's window unless its partition's stream time (the latest
`occurredAt` applied there before it, at most an hour past its record's broker timestamp when
that is known) has closed that window. It does not model what a
worker's restart or a rebalance changes (a partition's stream time then restarts from its
next event: contract section 11), so a stream compared with it should carry no event later
than the grace on its partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dev.harness.replay import Step
from stream_app.domain import Applied, CustomerSession
from stream_app.domain.stats import Figures, Windowing, record_event
from stream_app.worker.expiry import MAX_EVENT_TIME_AHEAD


@dataclass
class ExpectedStats:
    """Per (applicationId, window start), the figures; and the events left out as late."""

    windows: dict[tuple[int, int], Figures] = field(default_factory=dict)
    late: int = 0


def expected_stats(steps: Iterable[Step], windowing: Windowing) -> ExpectedStats:
    """The figures of every window, from the steps of `replay` (keyed records only)."""
    expected = ExpectedStats()
    sessions: dict[str, CustomerSession] = {}
    #: Per partition: (stream time, closed through).
    clocks: dict[int, tuple[float, int]] = {}
    for step in steps:
        if not isinstance(step.outcome, Applied) or step.event is None:
            continue
        event = step.event
        after = step.outcome.stored.session
        before = sessions.get(event.integration_id)
        sessions[event.integration_id] = after
        partition = step.record.partition
        start = windowing.start_of(event.occurred_at)
        clock = clocks.get(partition)
        late = clock is not None and windowing.is_late(start, clock[1])
        if late or not windowing.is_representable(start):
            expected.late += 1
        else:
            figures = expected.windows.setdefault((after.application_id, start), Figures())
            record_event(figures, before, after, event)
        at = event.occurred_at.timestamp()
        if step.record.timestamp is not None:
            # As far past its record's timestamp as the worker lets an event move stream time.
            at = min(at, step.record.timestamp + MAX_EVENT_TIME_AHEAD.total_seconds())
        if clock is None or at > clock[0]:
            clocks[partition] = (at, windowing.closed_through(at))
    return expected
