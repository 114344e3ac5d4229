"""Windowed statistics on the real broker: the stats topic against an offline aggregation.

Events carry the wall-clock time they are sent at as their occurredAt, so each partition sees
its events in time order (none is late) and the idle ticks, which move stream time to the
wall clock, close every window once traffic stops. Windows of 2 s with a grace of 2 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from dev.harness.kafka import client_security, raw_key, read_all
from dev.harness.replay import InputRecord, replay
from dev.harness.settle import wait_until
from dev.harness.stats import ExpectedStats, expected_stats
from dev.harness.workers import WorkerProcess
from dev.harness.workload import generate_workload
from stream_app.domain.stats import (
    Windowing,
    WindowStats,
    decode_window_stats,
    encode_window_stats,
)
from stream_app.settings import ProcessingGuarantee
from stream_app.worker.overrides.sends import murmur2

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WINDOWING = Windowing(size=2, grace=2)
STATS = {"stats_window": 2, "stats_grace": 2, "stats_idle": 1}
FIGURES = (
    "sessions_created", "sessions_closed", "sessions_cancelled", "sessions_partially_returned",
    "revenue_closed", "returned_value", "abandoned_value", "coupons_applied", "events_applied",
)  # fmt: skip


def stamped(value: bytes) -> bytes:
    """The record with occurredAt set to now (records that are not JSON objects: as they are)."""
    try:
        event = json.loads(value)
    except ValueError:
        return value
    if not isinstance(event, dict):
        return value
    event["occurredAt"] = datetime.now(UTC).isoformat()
    return json.dumps(event).encode()


async def send_live(
    bootstrap: str, topic: str, records: Sequence[tuple[str | None, bytes]], seconds: float
) -> None:
    """Send the records evenly over `seconds`, each stamped with the time it is sent at."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5, **client_security()
    )
    await producer.start()
    try:
        started = time.monotonic()
        for n, (key, value) in enumerate(records):
            await producer.send(topic, stamped(value), key=raw_key(key))
            ahead = started + seconds * (n + 1) / len(records) - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


async def expected_from_input(bootstrap: str, topic: str) -> ExpectedStats:
    """The offline aggregation of what the input topic holds, in the worker's order."""
    records = [InputRecord.from_consumer_record(r) for r in await read_all(bootstrap, topic)]
    return expected_stats(replay(records, answer_claims=True), WINDOWING)


async def published(bootstrap: str, topic: str) -> list[WindowStats]:
    return [decode_window_stats(r.value) for r in await read_all(bootstrap, topic)]


def as_figures(stats: WindowStats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in FIGURES}


def window_of(stats: WindowStats) -> tuple[int, int]:
    return stats.application_id, int(stats.window_start.timestamp())


async def wait_for_windows(
    bootstrap: str, topic: str, expected: ExpectedStats, timeout: float = 90.0
) -> list[WindowStats]:
    found: list[WindowStats] = []

    async def complete() -> bool:
        nonlocal found
        found = await published(bootstrap, topic)
        return set(expected.windows) <= {window_of(s) for s in found}

    await wait_until(complete, timeout=timeout, interval=1.0, what="every window closed")
    return found


def assert_equal_to_offline(found: list[WindowStats], expected: ExpectedStats) -> None:
    assert expected.late == 0  # the stream is in time order on every partition
    windows = [window_of(s) for s in found]
    assert len(windows) == len(set(windows)), "a window was published twice"
    assert set(windows) == set(expected.windows)
    for stats in found:
        assert stats.closed
        assert stats.window_end.timestamp() - stats.window_start.timestamp() == WINDOWING.size
        figures = expected.windows[window_of(stats)]
        assert as_figures(stats) == {name: getattr(figures, name) for name in FIGURES}, stats


def workload(seed: int, events: int) -> list[tuple[str | None, bytes]]:
    # Keyed records only: a key-less one is applied after a detour through the re-keyed
    # topic, in an order the offline replay does not reproduce.
    return [(k, v) for k, v in generate_workload(seed, sessions=250, events=events) if k]


@pytest.mark.parametrize("guarantee", list(ProcessingGuarantee))
async def test_two_workers_publish_the_offline_aggregation(
    start_worker: Callable[..., WorkerProcess], bootstrap: str, guarantee: ProcessingGuarantee
) -> None:
    records = workload(seed=19, events=2000)
    first = start_worker(partitions=4, prefix="stats", guarantee=guarantee, overrides=STATS)
    second = start_worker(settings=first.settings)
    await wait_until(
        lambda: first.health() == 200 and second.health() == 200, what="both workers healthy"
    )
    settings = first.settings
    await send_live(bootstrap, settings.input_topic, records, seconds=6.0)
    expected = await expected_from_input(bootstrap, settings.input_topic)
    assert len(expected.windows) >= 6  # several applications, several windows each
    found = await wait_for_windows(bootstrap, settings.stats_topic, expected)
    assert_equal_to_offline(found, expected)
    # GET /stats answers from the owner of the application's windows, whichever worker asked.
    application_id, _ = next(iter(expected.windows))
    for worker in (first, second):
        status, body = worker.get(f"/stats/{application_id}")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["applicationId"] == application_id
        on_topic = [
            json.loads(encode_window_stats(s)) for s in found if s.application_id == application_id
        ]
        assert [w for w in answer["windows"] if w["closed"]] == sorted(
            on_topic, key=lambda w: w["windowStart"]
        )


async def test_a_worker_killed_mid_window_changes_no_figure_under_exactly_once(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    records = workload(seed=23, events=2400)
    overrides = {**STATS, "session_timeout": 8.0}
    first = start_worker(partitions=4, prefix="statskill", overrides=overrides)
    second = start_worker(settings=first.settings)
    await wait_until(
        lambda: first.health() == 200 and second.health() == 200, what="both workers healthy"
    )
    settings = first.settings
    half = len(records) // 2
    await send_live(bootstrap, settings.input_topic, records[:half], seconds=4.0)
    second.kill()  # with windows open: the last ones have not reached their end plus grace
    await send_live(bootstrap, settings.input_topic, records[half:], seconds=4.0)
    expected = await expected_from_input(bootstrap, settings.input_topic)
    found = await wait_for_windows(bootstrap, settings.stats_topic, expected, timeout=120.0)
    assert_equal_to_offline(found, expected)


async def test_windows_close_while_part_of_the_input_is_idle(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    """Traffic on one partition of four: the idle three tick, and windows close meanwhile."""
    worker = start_worker(partitions=4, prefix="statsidle", overrides=STATS)
    settings = worker.settings
    records = [
        (key, value)
        for key, value in workload(seed=29, events=3000)
        if (murmur2(key.encode()) & 0x7FFFFFFF) % 4 == 0  # type: ignore[union-attr]
    ]
    sending = asyncio.create_task(send_live(bootstrap, settings.input_topic, records, seconds=10.0))
    try:
        # Before the traffic stops, windows have closed: the idle partitions did not hold them.
        await wait_until(
            lambda: _any_published(bootstrap, settings.stats_topic),
            timeout=9.0,
            interval=0.5,
            what="a window closed while traffic goes on",
        )
        assert not sending.done()
    finally:
        await sending
    expected = await expected_from_input(bootstrap, settings.input_topic)
    found = await wait_for_windows(bootstrap, settings.stats_topic, expected)
    assert_equal_to_offline(found, expected)


async def _any_published(bootstrap: str, topic: str) -> bool:
    return bool(await read_all(bootstrap, topic))
