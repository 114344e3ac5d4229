"""Small helpers for integration tests: events as dicts, outputs decoded, waiting for results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dev.harness.kafka import produce_all, read_all
from dev.harness.metrics import WorkerMetrics
from dev.harness.settle import wait_until
from dev.harness.workers import WorkerProcess
from stream_app.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "data"


def lifecycle_lines() -> list[bytes]:
    """The documented example: one session from creation to cancellation (tests/data)."""
    return [line for line in (DATA / "lifecycle.jsonl").read_bytes().splitlines() if line]


def event(
    event_id: str,
    integration_id: str,
    *,
    type_: str = "update",
    application_id: int = 1,
    occurred_at: str = "2026-11-25T10:00:00Z",
    **body: Any,
) -> bytes:
    """An input event as JSON bytes; `body` holds `session=` or `returnedCartItems=`."""
    value = {
        "eventId": event_id,
        "type": type_,
        "integrationId": integration_id,
        "applicationId": application_id,
        "occurredAt": occurred_at,
        **body,
    }
    if type_ == "update":
        value.setdefault("session", {})
    return json.dumps(value).encode()


async def send(bootstrap: str, topic: str, records: list[tuple[str | bytes | None, bytes]]) -> None:
    """Produce records in order and wait for the acks."""
    await produce_all(bootstrap, topic, records)


async def read_json(bootstrap: str, topic: str) -> list[tuple[str | None, dict[str, Any]]]:
    """Every committed record of a topic as (key, decoded JSON value)."""
    records = await read_all(bootstrap, topic)
    return [(None if r.key is None else r.key.decode(), json.loads(r.value)) for r in records]


def metrics(worker: WorkerProcess) -> WorkerMetrics:
    """The worker's GET /metrics, parsed (fails the test when it does not answer)."""
    found = worker.metrics()
    assert found is not None, "GET /metrics did not answer 200"
    return found


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[tuple[str | None, dict[str, Any]]]], bool],
    timeout: float = 60.0,
) -> list[tuple[str | None, dict[str, Any]]]:
    """Re-read a topic until `done(records)` holds; fail after `timeout` seconds."""
    records: list[tuple[str | None, dict[str, Any]]] = []

    async def read() -> bool:
        nonlocal records
        records = await read_json(bootstrap, topic)
        return done(records)

    await wait_until(read, timeout=timeout, interval=0.5, what=f"records on {topic}")
    return records


def run_cli(
    settings: Settings, *args: str, stdin: bytes | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run `stream-app ARGS` with these settings in its environment, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "stream_app", *args],
        env={**os.environ, **settings.to_env()},
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
