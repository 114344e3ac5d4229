"""What the worker measures, exported in Prometheus text through one prometheus_client registry.

The agents count with plain attributes (an int increment per record costs nothing); a
collector turns them into metric families when GET /metrics is scraped. What only the running
app knows (consumer lag, restore progress) is read at scrape time through callbacks it sets.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: Histogram buckets for per-event processing time, in seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
#: Buckets for end-to-end latency (input record timestamp to outputs queued), in seconds.
END_TO_END_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
#: Buckets for the duration of a consumer offset commit, in seconds.
COMMIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Buckets for the records of one batch an agent handles (at most STREAM_APP_MAX_BATCH).
BATCH_BUCKETS: tuple[float, ...] = (
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
)  # fmt: skip
#: The agents whose batches are measured, as the `agent` label of stream_app_batch_records.
AGENTS: tuple[str, ...] = ("sessions", "profiles", "stats")
#: The stages of a record's way through the worker, in order (stream_app_stage_seconds{stage}):
#: fetch (input topic records): the producer's timestamp -> the batch handed over by Faust's
#: consumer;
#: queue: -> the agent takes the batch; lock: waiting for a commit to end;
#: apply: the core, for the whole batch; write: RocksDB and handing the records to the producer;
#: deliver: -> acknowledged by Kafka (at_least_once) or committed (exactly_once).
STAGES: tuple[str, ...] = ("fetch", "queue", "lock", "apply", "write", "deliver")
#: Buckets for the stages, in seconds.
STAGE_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip

#: (topic, partition) -> records not yet committed by this worker's consumer group.
LagSource = Callable[[], Mapping[tuple[str, int], int]]
#: Changelog records the table recovery still has to apply (0 when not restoring).
RestoreSource = Callable[[], int]


@dataclass
class Histogram:
    """Bucket counts of observed values; cumulative only when rendered."""

    bounds: tuple[float, ...]
    buckets: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.buckets:
            self.buckets = [0] * len(self.bounds)

    def observe(self, value: float, times: int = 1) -> None:
        """Count one value (`times` times: e.g. once per record of a batch)."""
        self.count += times
        self.total += value * times
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.buckets):
            self.buckets[index] += times

    def rows(self) -> list[tuple[str, float]]:
        """Cumulative bucket counts by upper bound, ending with +Inf."""
        cumulative, rows = 0, []
        for bound, n in zip(self.bounds, self.buckets, strict=True):
            cumulative += n
            rows.append((str(bound), float(cumulative)))
        rows.append(("+Inf", float(self.count)))
        return rows

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        """The histogram as a Prometheus metric family."""
        return HistogramMetricFamily(name, documentation, buckets=self.rows(), sum_value=self.total)


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
    rebalances: int = 0
    #: Sessions removed from the table by retention.
    sessions_expired: int = 0
    #: Per table partition, from its last full retention sweep: (sessions stored, event-time
    #: age in seconds of the oldest one's last activity).
    swept: dict[int, tuple[int, float]] = field(default_factory=dict)
    #: Applied events not counted in the statistics because their window had closed, by
    #: where that was found: "source" (their partition) or "combiner".
    stats_late_events: Counter[str] = field(default_factory=Counter)
    #: Statistics windows closed and published on the stats topic.
    stats_windows_closed: int = 0
    #: Statistics partials read again and skipped (at_least_once, after a crash).
    stats_partials_repeated: int = 0
    #: Ticks sent for idle partitions.
    stats_ticks: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    processing: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    end_to_end: Histogram = field(default_factory=lambda: Histogram(END_TO_END_BUCKETS))
    commits: Histogram = field(default_factory=lambda: Histogram(COMMIT_BUCKETS))
    #: Records per handled batch, by agent.
    batches: dict[str, Histogram] = field(
        default_factory=lambda: {agent: Histogram(BATCH_BUCKETS) for agent in AGENTS}
    )
    #: Seconds per record in each stage of its way through the worker (STAGES).
    stages: dict[str, Histogram] = field(
        default_factory=lambda: {stage: Histogram(STAGE_BUCKETS) for stage in STAGES}
    )
    #: Labels of stream_app_info: version, guarantee, faust_version.
    info: dict[str, str] = field(default_factory=dict)
    lag_source: LagSource | None = None
    restore_source: RestoreSource | None = None
    #: The largest restore backlog seen since the last rebalance began.
    restore_to_do: int = 0
    registry: CollectorRegistry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        # CPU seconds and resident memory of this process (process_*), for the dashboard.
        ProcessCollector(registry=self.registry)

    @property
    def latency_count(self) -> int:
        """Events whose processing time was observed."""
        return self.processing.count

    def observe_latency(self, seconds: float) -> None:
        """Record how long one event took from receipt to its outputs being queued."""
        self.processing.observe(seconds)

    def observe_end_to_end(self, seconds: float) -> None:
        """Record the time from an input record's timestamp to its outputs being queued."""
        self.end_to_end.observe(max(seconds, 0.0))

    def observe_stage(self, stage: str, seconds: float, records: int = 1) -> None:
        """Record that `records` records spent `seconds` in a stage (negative clock skew: 0)."""
        self.stages[stage].observe(max(seconds, 0.0), records)

    def observe_batch(self, agent: str, records: int) -> None:
        """Record how many records one batch of an agent held."""
        self.batches[agent].observe(records)

    def restore_remaining(self) -> int:
        """Changelog records still to restore; remembers the largest backlog seen."""
        remaining = 0 if self.restore_source is None else self.restore_source()
        self.restore_to_do = max(self.restore_to_do, remaining)
        return remaining

    def render(self) -> str:
        """Prometheus text exposition (version 0.0.4) of every metric."""
        return generate_latest(self.registry).decode()


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics

        def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, documentation, value=value)

        def labelled(
            name: str, documentation: str, label: str, values: Mapping[str, int]
        ) -> CounterMetricFamily:
            family = CounterMetricFamily(name, documentation, labels=[label])
            for key, n in sorted(values.items()):
                family.add_metric([key], n)
            return family

        # Counter names are given without _total: prometheus_client adds it.
        yield counter("stream_app_events_consumed", "Records read from the input topic.",
                      m.events_consumed)  # fmt: skip
        yield counter("stream_app_verdicts_consumed",
                      "firstSession verdicts read by the session agent.",
                      m.verdicts_consumed)  # fmt: skip
        yield counter("stream_app_events_applied", "Events applied to a session.", m.applied)
        yield counter("stream_app_events_duplicate", "Events skipped as already applied.",
                      m.duplicates)  # fmt: skip
        yield labelled("stream_app_events_rejected",
                       "Events sent to the dead-letter topic (dead letters), by error code.",
                       "code", m.rejected)  # fmt: skip
        yield labelled("stream_app_transitions", "State transitions emitted, by target state.",
                       "to", m.transitions)  # fmt: skip
        yield counter("stream_app_snapshots_sent", "CustomerSession snapshots sent.",
                      m.snapshots_sent)  # fmt: skip
        yield counter("stream_app_snapshots_held",
                      "Snapshots held back while a firstSession verdict was pending.",
                      m.snapshots_held)  # fmt: skip
        yield counter("stream_app_profile_claims", "firstSession claims sent.", m.claims_sent)
        yield counter("stream_app_profile_verdicts", "firstSession verdicts applied to a session.",
                      m.verdicts_applied)  # fmt: skip
        yield counter("stream_app_profile_verdicts_without_session",
                      "Verdicts read before their session's state (at_least_once, after a crash).",
                      m.verdicts_without_session)  # fmt: skip
        yield counter("stream_app_rebalances", "Consumer group rebalances this worker saw.",
                      m.rebalances)  # fmt: skip
        yield counter("stream_app_sessions_expired",
                      "Sessions removed from the table by retention (changelog tombstones).",
                      m.sessions_expired)  # fmt: skip
        yield labelled("stream_app_stats_late_events",
                       "Applied events left out of the statistics: their window had closed "
                       "on their partition (source) or for every partition (combiner).",
                       "where", m.stats_late_events)  # fmt: skip
        yield counter("stream_app_stats_windows_closed",
                      "Statistics windows closed and sent to the stats topic.",
                      m.stats_windows_closed)  # fmt: skip
        yield counter("stream_app_stats_partials_repeated",
                      "Statistics partials read again and not added twice.",
                      m.stats_partials_repeated)  # fmt: skip
        yield counter("stream_app_stats_ticks",
                      "Ticks sent to move an idle partition's stream time.",
                      m.stats_ticks)  # fmt: skip
        swept = dict(m.swept)
        yield GaugeMetricFamily(
            "stream_app_sessions_stored",
            "Sessions in this worker's table partitions, as counted by their last full "
            "retention sweep.",
            value=sum(stored for stored, _ in swept.values()),
        )
        yield GaugeMetricFamily(
            "stream_app_oldest_session_age_seconds",
            "Event-time age of the least recently active stored session, at the last full "
            "retention sweep of its partition.",
            value=max((age for _, age in swept.values()), default=0.0),
        )
        yield m.processing.family(
            "stream_app_processing_seconds", "Time from receiving an event to queueing its outputs."
        )
        yield m.end_to_end.family(
            "stream_app_end_to_end_seconds",
            "Time from an input record's timestamp to its outputs being queued.",
        )
        yield m.commits.family(
            "stream_app_commit_seconds",
            "Duration of commits (under exactly_once: every transaction with its offsets).",
        )
        batches = HistogramMetricFamily(
            "stream_app_batch_records", "Records per batch an agent handled.", labels=["agent"]
        )
        for agent, histogram in sorted(m.batches.items()):
            batches.add_metric([agent], histogram.rows(), sum_value=histogram.total)
        yield batches
        stages = HistogramMetricFamily(
            "stream_app_stage_seconds",
            "Seconds per record in each stage of its way through the worker.",
            labels=["stage"],
        )
        for stage in STAGES:
            histogram = m.stages[stage]
            stages.add_metric([stage], histogram.rows(), sum_value=histogram.total)
        yield stages

        lag = GaugeMetricFamily(
            "stream_app_consumer_lag",
            "Records of an assigned partition not yet committed by this worker.",
            labels=["topic", "partition"],
        )
        if m.lag_source is not None:
            for (topic, partition), n in sorted(m.lag_source().items()):
                lag.add_metric([topic, str(partition)], n)
        yield lag
        remaining = m.restore_remaining()
        yield GaugeMetricFamily(
            "stream_app_restore_remaining_records",
            "Changelog records the table recovery still has to apply (0 when not restoring).",
            value=remaining,
        )
        restore = GaugeMetricFamily(
            "stream_app_restore_progress_records",
            "Changelog records of the current or last restore, by kind (to_restore, restored).",
            labels=["kind"],
        )
        restore.add_metric(["to_restore"], m.restore_to_do)
        restore.add_metric(["restored"], m.restore_to_do - remaining)
        yield restore
        info = InfoMetricFamily("stream_app", "Version, guarantee and Faust version.")
        info.add_metric([], m.info)
        yield info
