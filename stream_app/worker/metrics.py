"""Process-local counters and a latency histogram, rendered as Prometheus text."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

#: Histogram buckets for per-event processing time, in seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


@dataclass
class Metrics:
    """What the worker counts; one instance per worker process."""

    events_consumed: int = 0
    verdicts_consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    snapshots_sent: int = 0
    snapshots_held: int = 0
    claims_sent: int = 0
    verdicts_applied: int = 0
    verdicts_without_session: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        """Record how long one event took from receipt to its outputs being queued."""
        self.latency_count += 1
        self.latency_sum += seconds
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(self.latency_buckets):
            self.latency_buckets[index] += 1

    def render(self) -> str:
        """Prometheus text exposition (version 0.0.4) of every metric."""
        lines: list[str] = []

        def counter(name: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            lines.extend(f"{name}{labels} {value}" for labels, value in samples)

        counter("stream_app_events_consumed_total", "Records read from the input topic.",
                [("", self.events_consumed)])  # fmt: skip
        counter("stream_app_verdicts_consumed_total",
                "firstSession verdicts read by the session agent.",
                [("", self.verdicts_consumed)])  # fmt: skip
        counter("stream_app_events_applied_total", "Events applied to a session.",
                [("", self.applied)])  # fmt: skip
        counter("stream_app_events_duplicate_total", "Events skipped as already applied.",
                [("", self.duplicates)])  # fmt: skip
        counter(
            "stream_app_events_rejected_total",
            "Events sent to the dead-letter topic, by error code.",
            [(f'{{code="{code}"}}', n) for code, n in sorted(self.rejected.items())],
        )
        counter(
            "stream_app_transitions_total",
            "State transitions emitted, by target state.",
            [(f'{{to="{state}"}}', n) for state, n in sorted(self.transitions.items())],
        )
        counter("stream_app_snapshots_sent_total", "CustomerSession snapshots sent.",
                [("", self.snapshots_sent)])  # fmt: skip
        counter(
            "stream_app_snapshots_held_total",
            "Snapshots held back while a firstSession verdict was pending.",
            [("", self.snapshots_held)],
        )
        counter("stream_app_profile_claims_total", "firstSession claims sent.",
                [("", self.claims_sent)])  # fmt: skip
        counter("stream_app_profile_verdicts_total", "firstSession verdicts applied to a session.",
                [("", self.verdicts_applied)])  # fmt: skip
        counter(
            "stream_app_profile_verdicts_without_session_total",
            "Verdicts read before their session's state (at_least_once, after a crash).",
            [("", self.verdicts_without_session)],
        )

        name = "stream_app_processing_seconds"
        lines.append(f"# HELP {name} Time from receiving an event to queueing its outputs.")
        lines.append(f"# TYPE {name} histogram")
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.latency_count}')
        lines.append(f"{name}_sum {self.latency_sum:.6f}")
        lines.append(f"{name}_count {self.latency_count}")
        return "\n".join(lines) + "\n"
