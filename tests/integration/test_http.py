"""The worker's web port: health, sessions and Prometheus metrics that move with the stream."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from dev.harness.settle import wait_until
from dev.harness.workers import WorkerProcess, settings_for
from stream_app.settings import LogFormat
from tests.integration.helpers import event, metrics, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_health_metrics_and_sessions_over_http(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=2)
    assert worker.health() == 200
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    assert "# TYPE stream_app_events_consumed_total counter" in text
    assert "# TYPE stream_app_processing_seconds histogram" in text
    consumed_before = metrics(worker).value("stream_app_events_consumed_total")

    status, body = worker.get("/sessions/h-1")
    assert status == 404
    assert "h-1" in json.loads(body)["error"]

    cart = [{"sku": "A", "quantity": 1, "price": 3.0}]
    await send(bootstrap, worker.settings.input_topic, [
        ("h-1", event("h1", "h-1", session={"cartItems": cart})),
        ("h-1", event("h2", "h-1", session={"state": "closed"})),
        ("h-1", event("h2", "h-1", session={"state": "closed"})),
        ("h-1", b"{broken"),
    ])  # fmt: skip
    await wait_until(
        lambda: metrics(worker).value("stream_app_events_consumed_total") >= consumed_before + 4,
        what="four events consumed",
    )
    assert metrics(worker).value("stream_app_events_applied_total") == 2
    assert metrics(worker).value("stream_app_events_duplicate_total") == 1
    assert metrics(worker).value("stream_app_events_rejected_total", code="malformed_json") == 1
    assert metrics(worker).value("stream_app_transitions_total", to="open") == 1
    assert metrics(worker).value("stream_app_transitions_total", to="closed") == 1
    assert metrics(worker).value("stream_app_snapshots_sent_total") == 2
    assert metrics(worker).value("stream_app_processing_seconds_count") >= 4
    assert metrics(worker).value("stream_app_processing_seconds_bucket", le="+Inf") >= 4

    status, body = worker.get("/sessions/h-1")
    assert status == 200
    snapshot = json.loads(body)
    assert snapshot["state"] == "closed"
    assert snapshot["total"] == 3.0
    assert snapshot["updateCount"] == 2


async def test_json_log_lines_cover_fausts_own_and_the_rebalance(
    start_worker: Callable[..., WorkerProcess],
    bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    settings = settings_for(bootstrap, unique_name("sa"), tmp_path / "json", partitions=2)
    worker = start_worker(replace(settings, log_format=LogFormat.JSON))
    await wait_until(lambda: "rebalance 1 done" in worker.tail(), what="the rebalance line")
    worker.stop()

    lines = [json.loads(line) for line in worker.log_path.read_text().splitlines() if line]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    loggers = {line["logger"] for line in lines}
    assert any(name.startswith("faust.") for name in loggers), loggers
    assert any(
        line["logger"] == "stream_app.worker" and line["message"].startswith("rebalance 1 done")
        for line in lines
    )
    # It binds 0.0.0.0 without a token: it says so, in the log's own format.
    assert any(
        line["level"] == "WARNING" and "without a token" in line["message"] for line in lines
    )
