"""`stream-app produce` and `stream-app dlq` on the real broker, run as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka.partitioner import DefaultPartitioner

from dev.harness.kafka import delete_topics, produce_all, read_all
from dev.harness.workers import WorkerProcess, settings_for
from stream_app.domain import Rejected, RejectionSource, build_rejection, encode_json
from stream_app.settings import Settings
from stream_app.tools.dlq import REPLAY_HEADER
from stream_app.worker.dead_letters import ATTEMPT_HEADER
from stream_app.worker.topics import ensure_topics
from tests.integration.helpers import event, lifecycle_lines, metrics, read_until, run_cli, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PARTITIONS = 4


@pytest_asyncio.fixture
async def topics(
    bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> AsyncIterator[Settings]:
    """Settings of fresh topics created as a worker creates them (no worker runs)."""
    settings = settings_for(bootstrap, unique_name("tools"), tmp_path, partitions=PARTITIONS)
    await ensure_topics(settings)
    yield settings
    await delete_topics(bootstrap, f"{settings.app_id}-")


async def test_produce_keys_each_line_and_skips_bad_lines(
    topics: Settings, bootstrap: str, tmp_path: Path
) -> None:
    lines = lifecycle_lines()
    keyed = b"other-key\t{not json at all"
    keyless = b'\t{"eventId":"k"}'
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join([*lines[:3], b"[1, 2]", b"", keyed, keyless, *lines[3:]]) + b"\n")

    result = run_cli(topics, "produce", str(source))

    assert result.returncode == 0, result.stderr
    assert "line 4: not a JSON event with a string integrationId" in result.stderr
    sent = len(lines) + 2
    assert f"sent {sent} records to {topics.input_topic} ({PARTITIONS} partitions)" in (
        result.stdout
    )
    assert "1 bad lines skipped" in result.stdout
    records = await read_all(bootstrap, topics.input_topic)
    expected = [
        *((b"URNGV8294NV", line) for line in lines),
        (b"other-key", b"{not json at all"),
        (None, b'{"eventId":"k"}'),
    ]
    assert sorted(((r.key, r.value) for r in records), key=repr) == sorted(expected, key=repr)
    # Keyed records land where Kafka's default (murmur2) partitioner puts their key.
    partitioner = DefaultPartitioner()
    every = list(range(PARTITIONS))
    for record in records:
        if record.key is not None:
            assert record.partition == partitioner(record.key, every, every)
    # The lifecycle's records keep their order within their partition.
    assert [r.value for r in records if r.key == b"URNGV8294NV"] == lines


async def test_produce_strict_sends_nothing_when_a_line_is_bad(
    topics: Settings, bootstrap: str
) -> None:
    good = event("e1", "S-1")
    result = run_cli(topics, "produce", "--strict", "-", stdin=good + b"\n{oops\n" + good)
    assert result.returncode == 1
    assert "line 2:" in result.stderr
    assert "nothing sent" in result.stdout
    assert await read_all(bootstrap, topics.input_topic) == []


def _dead_letter(code: str, key: str, offset: int, value: bytes) -> tuple[str, bytes]:
    source = RejectionSource(topic="events", partition=0, offset=offset, key=key)
    rejection = build_rejection(
        Rejected(code=code, message=f"{code} message"),  # type: ignore[arg-type]
        value,
        source,
        rejected_at=datetime.now(UTC),
    )
    return key, encode_json(rejection)


async def test_dlq_summary_and_tail(topics: Settings, bootstrap: str) -> None:
    letters = [
        _dead_letter("invalid_event", "A", 1, b"{}"),
        _dead_letter("invalid_event", "B", 2, b"{}"),
        _dead_letter("session_not_found", "C", 3, b"\xff binary"),
    ]
    await produce_all(bootstrap, topics.dlq_topic, letters)

    summary = run_cli(topics, "dlq", "summary", "--json")
    assert summary.returncode == 0, summary.stderr
    found = json.loads(summary.stdout)
    assert found["total"] == 3
    assert {code: c["count"] for code, c in found["codes"].items()} == {
        "invalid_event": 2,
        "session_not_found": 1,
    }
    assert found["sources"] == {"events": 3}
    text = run_cli(topics, "dlq", "summary").stdout
    assert text.startswith(f"3 dead letters on {topics.dlq_topic}")
    assert run_cli(topics, "dlq", "summary", "--since", "1h").stdout.startswith("3 dead")
    assert run_cli(topics, "dlq", "summary", "--until", "1h").stdout.startswith("0 dead")

    tail = run_cli(topics, "dlq", "tail", "-n", "2")
    shown = tail.stdout.splitlines()
    assert len(shown) == 2, tail.stdout
    assert all("key=" in line and "source=events:0:" in line for line in shown)
    only = run_cli(topics, "dlq", "tail", "--code", "session_not_found").stdout.splitlines()
    assert len(only) == 1
    assert "session_not_found  key=C  source=events:0:3" in only[0]

    # -f prints what is written after it started.
    follower = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "dlq", "tail", "-n", "0", "-f"],
        env={**os.environ, **topics.to_env()},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(5)  # let it reach the end before the new dead letter arrives
        await produce_all(
            bootstrap, topics.dlq_topic, [_dead_letter("key_mismatch", "D", 4, b"{}")]
        )
        assert follower.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(follower.stdout.readline), 60)
        assert "key_mismatch  key=D" in line
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


async def test_replay_applies_a_rejected_return_once_its_session_exists(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=PARTITIONS)
    settings = worker.settings
    key = "REPLAY-1"
    early_return = event(
        "r1", key, type_="return", returnedCartItems=[{"position": 0, "quantity": 1}]
    )
    await send(bootstrap, settings.input_topic, [(key, early_return)])
    await read_until(bootstrap, settings.dlq_topic, lambda rs: len(rs) == 1)

    dry = run_cli(settings, "dlq", "replay", "--code", "session_not_found", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would replay 1 of 1 selected" in dry.stdout
    assert f"key={key}" in dry.stdout
    assert len(await read_all(bootstrap, settings.input_topic)) == 1

    cart = [{"sku": "SKU-1", "quantity": 2, "price": 10.0}]
    created = event("c1", key, session={"state": "closed", "cartItems": cart})
    await send(bootstrap, settings.input_topic, [(key, created)])
    await read_until(bootstrap, settings.transitions_topic, lambda rs: len(rs) == 1)

    first = run_cli(settings, "dlq", "replay", "--code", "session_not_found")
    assert first.returncode == 0, first.stderr
    assert "replayed 1 of 1 selected" in first.stdout
    transitions = await read_until(bootstrap, settings.transitions_topic, lambda rs: len(rs) == 2)
    assert (transitions[1][1]["from"], transitions[1][1]["to"]) == ("closed", "partially_returned")
    assert transitions[1][1]["eventId"] == "r1"
    inputs = await read_all(bootstrap, settings.input_topic)
    replayed = [r for r in inputs if any(h[0] == REPLAY_HEADER for h in r.headers)]
    assert [(r.key, r.value) for r in replayed] == [(key.encode(), early_return)]
    dead = (await read_all(bootstrap, settings.dlq_topic))[0]
    coordinates = f"{settings.dlq_topic}:{dead.partition}:{dead.offset}"
    assert dict(replayed[0].headers)[REPLAY_HEADER] == coordinates.encode()

    second = run_cli(settings, "dlq", "replay", "--code", "session_not_found")
    assert second.returncode == 0, second.stderr
    assert "replayed 0 of 1 selected" in second.stdout
    assert "1 already replayed" in second.stdout
    # Nothing new on the input topic, and nothing new rejected.
    await asyncio.sleep(1)
    assert len(await read_all(bootstrap, settings.input_topic)) == len(inputs)
    assert len(await read_all(bootstrap, settings.dlq_topic)) == 1


async def test_metrics_show_lag_info_and_end_to_end_latency(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=2)
    settings = worker.settings
    await send(bootstrap, settings.input_topic, [("M-1", event("e1", "M-1"))])
    await read_until(bootstrap, settings.transitions_topic, lambda rs: len(rs) == 1)
    scrape = metrics(worker)
    assert scrape.value("stream_app_end_to_end_seconds_count") == 1
    assert scrape.by_label("stream_app_info", "guarantee") == {"exactly_once": 1}
    lag = scrape.by_label("stream_app_consumer_lag", "partition")
    assert set(lag) >= {"0", "1"}, lag
    assert scrape.value("stream_app_rebalances_total") >= 1
    assert scrape.value("stream_app_restore_remaining_records") == 0


async def test_a_record_that_keeps_failing_is_re_driven_a_bounded_number_of_times(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=PARTITIONS)
    settings = worker.settings
    never = event("r9", "NEVER", type_="return", returnedCartItems=[{"position": 0}])
    await send(bootstrap, settings.input_topic, [("NEVER", never)])
    await read_until(bootstrap, settings.dlq_topic, lambda rs: len(rs) == 1)

    # Each replay fails again (the session never exists): its dead letter counts the replays.
    for attempt in (1, 2):
        replay = run_cli(settings, "dlq", "replay", "--code", "session_not_found", "--rate", "50")
        assert replay.returncode == 0, replay.stderr
        assert "replayed 1 of" in replay.stdout, replay.stdout
        await read_until(bootstrap, settings.dlq_topic, lambda rs, n=attempt: len(rs) == n + 1)
    letters = await read_all(bootstrap, settings.dlq_topic)
    assert [dict(r.headers).get(ATTEMPT_HEADER) for r in letters] == [None, b"1", b"2"]

    # The third dead letter is the record's third failure: skipped unless forced.
    third = run_cli(settings, "dlq", "replay", "--code", "session_not_found")
    assert "replayed 0 of 3 selected" in third.stdout, third.stdout
    assert "2 already replayed" in third.stdout
    assert "1 failed 3 times or more (--force sends them)" in third.stdout
    forced = run_cli(settings, "dlq", "replay", "--code", "session_not_found", "--force")
    assert "replayed 1 of 3 selected" in forced.stdout, forced.stdout
    inputs = await read_all(bootstrap, settings.input_topic)
    assert [dict(r.headers).get(ATTEMPT_HEADER) for r in inputs] == [None, b"1", b"2", b"3"]
