"""Prometheus text rendering of the worker's counters."""

from __future__ import annotations

from stream_app.worker.metrics import LATENCY_BUCKETS, Metrics


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_counters_and_labels_render() -> None:
    metrics = Metrics()
    metrics.consumed = 5
    metrics.applied = 3
    metrics.duplicates = 1
    metrics.rejected["invalid_event"] += 1
    metrics.transitions["open"] += 2
    rendered = samples(metrics.render())
    assert rendered["stream_app_events_consumed_total"] == 5
    assert rendered["stream_app_events_applied_total"] == 3
    assert rendered["stream_app_events_duplicate_total"] == 1
    assert rendered['stream_app_events_rejected_total{code="invalid_event"}'] == 1
    assert rendered['stream_app_transitions_total{to="open"}'] == 2


def test_latency_histogram_is_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.00005, 0.003, 0.003, 7.0):
        metrics.observe_latency(seconds)
    rendered = samples(metrics.render())
    assert rendered[f'stream_app_processing_seconds_bucket{{le="{LATENCY_BUCKETS[0]}"}}'] == 1
    assert rendered['stream_app_processing_seconds_bucket{le="0.005"}'] == 3
    assert rendered['stream_app_processing_seconds_bucket{le="2.5"}'] == 3
    assert rendered['stream_app_processing_seconds_bucket{le="+Inf"}'] == 4
    assert rendered["stream_app_processing_seconds_count"] == 4
    assert abs(rendered["stream_app_processing_seconds_sum"] - 7.00605) < 1e-6
