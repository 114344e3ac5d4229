"""Prometheus text rendering of the worker's counters, read back with a real parser."""

from __future__ import annotations

from dev.harness.metrics import WorkerMetrics
from stream_app.worker.metrics import LATENCY_BUCKETS, Metrics


def test_counters_and_labels_render() -> None:
    metrics = Metrics()
    metrics.events_consumed = 5
    metrics.verdicts_consumed = 2
    metrics.applied = 3
    metrics.duplicates = 1
    metrics.claims_sent = 2
    metrics.verdicts_applied = 1
    metrics.rejected["invalid_event"] += 1
    metrics.transitions["open"] += 2
    rendered = WorkerMetrics.parse(metrics.render())
    assert rendered.value("stream_app_events_consumed_total") == 5
    assert rendered.value("stream_app_verdicts_consumed_total") == 2
    assert rendered.value("stream_app_events_applied_total") == 3
    assert rendered.value("stream_app_events_duplicate_total") == 1
    assert rendered.value("stream_app_events_rejected_total", code="invalid_event") == 1
    assert rendered.value("stream_app_transitions_total", to="open") == 2
    assert rendered.value("stream_app_profile_claims_total") == 2
    assert rendered.value("stream_app_profile_verdicts_total") == 1
    # What the harness derives from them.
    assert rendered.handled == 5
    assert rendered.finished(5)
    assert not rendered.finished(6)


def test_a_claim_without_its_verdict_is_not_finished() -> None:
    metrics = Metrics(events_consumed=1, applied=1, claims_sent=1)
    assert not WorkerMetrics.parse(metrics.render()).finished(1)
    metrics.verdicts_consumed = 1
    assert WorkerMetrics.parse(metrics.render()).finished(1)


def test_latency_histogram_is_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.00005, 0.003, 0.003, 7.0):
        metrics.observe_latency(seconds)
    rendered = WorkerMetrics.parse(metrics.render())
    bucket = "stream_app_processing_seconds_bucket"
    assert rendered.value(bucket, le=str(LATENCY_BUCKETS[0])) == 1
    assert rendered.value(bucket, le="0.005") == 3
    assert rendered.value(bucket, le="2.5") == 3
    assert rendered.value(bucket, le="+Inf") == 4
    assert rendered.value("stream_app_processing_seconds_count") == 4
    assert abs(rendered.value("stream_app_processing_seconds_sum") - 7.00605) < 1e-6
    assert rendered.histogram_bound("stream_app_processing_seconds", 0.5) == 0.005
    assert rendered.histogram_bound("stream_app_processing_seconds", 0.99) is None


def test_every_metric_is_exported_through_one_registry() -> None:
    metrics = Metrics()
    metrics.rebalances = 2
    metrics.info.update(version="1.2.3", guarantee="exactly_once", faust_version="0.15.3")
    metrics.lag_source = lambda: {("events", 0): 5, ("events", 1): 0}
    backlog = [100]
    metrics.restore_source = lambda: backlog[0]
    metrics.observe_end_to_end(0.2)
    metrics.commits.observe(0.03)
    rendered = WorkerMetrics.parse(metrics.render())
    assert rendered.value("stream_app_rebalances_total") == 2
    assert rendered.value("stream_app_consumer_lag", topic="events", partition="0") == 5
    assert rendered.value("stream_app_consumer_lag", topic="events", partition="1") == 0
    assert rendered.value("stream_app_end_to_end_seconds_bucket", le="0.25") == 1
    assert rendered.value("stream_app_end_to_end_seconds_bucket", le="0.1") == 0
    assert rendered.value("stream_app_commit_seconds_count") == 1
    assert (
        rendered.value(
            "stream_app_info", version="1.2.3", guarantee="exactly_once", faust_version="0.15.3"
        )
        == 1
    )
    assert rendered.value("stream_app_restore_remaining_records") == 100
    # Restore progress: the largest backlog seen is what there was to restore.
    backlog[0] = 40
    rendered = WorkerMetrics.parse(metrics.render())
    assert rendered.value("stream_app_restore_progress_records", kind="to_restore") == 100
    assert rendered.value("stream_app_restore_progress_records", kind="restored") == 60
    # This process's CPU and memory, for the dashboard.
    assert rendered.value("process_resident_memory_bytes") > 0
