"""Small helpers for integration tests: events as dicts, outputs decoded, waiting for results."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream_app.tools.kafka_io import produce_all, read_all
from stream_app.tools.worker_process import WorkerProcess

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
    records = await read_all(bootstrap, topic, idle_seconds=1.0)
    return [(None if r.key is None else r.key.decode(), json.loads(r.value)) for r in records]


def metric(worker: WorkerProcess, name: str) -> float:
    """The value of one sample line of GET /metrics (name with labels, if any)."""
    status, body = worker.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def wait_until(
    condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[tuple[str | None, dict[str, Any]]]], bool],
    timeout: float = 60.0,
) -> list[tuple[str | None, dict[str, Any]]]:
    """Re-read a topic until `done(records)` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    records: list[tuple[str | None, dict[str, Any]]] = []
    while time.monotonic() < deadline:
        records = await read_json(bootstrap, topic)
        if done(records):
            return records
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out reading {topic}; last read {len(records)} records")
