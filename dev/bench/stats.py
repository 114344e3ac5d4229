"""The statistics' cost: the same drain with STREAM_APP_STATS on and off.

The benchmark's workload spreads each session's events over a day of event time in no global
order, so with one-minute windows most events would be late on their partition (and cheap: not
counted), or, with a grace of a day, a batch would touch hundreds of windows. A live stream is
neither: its events arrive about in time order. These runs drain the same records with their
`occurredAt` rewritten in record order at a steady event-time rate, so every event is counted
and a batch touches the few windows a live stream's batch would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

#: Event time per record: 2,000 events per second of event time (the latency runs' rate).
EVENT_TIME_STEP = timedelta(microseconds=500)


def in_time_order(
    records: Sequence[tuple[str | None, bytes]], start: datetime | None = None
) -> list[tuple[str | None, bytes]]:
    """The records with increasing occurredAt (those that are not JSON objects: as they are)."""
    at = start or datetime.now(UTC) - EVENT_TIME_STEP * len(records)
    ordered: list[tuple[str | None, bytes]] = []
    for key, value in records:
        at += EVENT_TIME_STEP
        try:
            event = json.loads(value)
        except ValueError:
            ordered.append((key, value))
            continue
        if isinstance(event, dict) and "occurredAt" in event:
            event["occurredAt"] = at.isoformat()
            value = json.dumps(event).encode()
        ordered.append((key, value))
    return ordered
