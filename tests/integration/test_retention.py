"""Retention on the real broker: removals are changelog tombstones a restore does not undo."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dev.harness.kafka import read_all
from dev.harness.settle import wait_until
from dev.harness.workers import WorkerProcess, settings_for
from stream_app.settings import ProcessingGuarantee
from tests.integration.helpers import event, metrics, read_until, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

#: Event time of the stream: well in the past, so that every occurredAt moves stream time.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)


def at(day: float) -> str:
    return (T0 + timedelta(days=day)).isoformat()


@pytest.mark.parametrize("guarantee", list(ProcessingGuarantee))
async def test_expired_sessions_are_tombstoned_and_stay_gone_after_a_restore(
    start_worker: Callable[..., WorkerProcess],
    bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    guarantee: ProcessingGuarantee,
) -> None:
    settings = settings_for(
        bootstrap, unique_name("ret"), tmp_path / "w0", partitions=1, guarantee=guarantee
    )
    worker = start_worker(replace(settings, retention_snapshot_tombstones=True))
    settings = worker.settings
    topic = settings.input_topic
    await send(bootstrap, topic, [
        ("gone", event("g0", "gone", occurred_at=at(0))),
        ("gone", event("g1", "gone", occurred_at=at(0), session={"state": "cancelled"})),
        ("paid", event("p0", "paid", occurred_at=at(0))),
        ("paid", event("p1", "paid", occurred_at=at(0), session={"state": "closed"})),
        ("cart", event("c0", "cart", occurred_at=at(60))),
        ("live", event("l0", "live", occurred_at=at(95))),
    ])  # fmt: skip
    await read_until(bootstrap, settings.output_topic, lambda records: len(records) >= 6)
    assert worker.get("/sessions/gone")[0] == 200
    # Stream time moves to day 99: cancelled (99 > 7 days), closed (99 > 90) and the idle cart
    # (39 > 30) go; the live session (4 days idle) stays.
    await send(bootstrap, topic, [("tick", event("t0", "tick", occurred_at=at(99)))])
    await wait_until(
        lambda: metrics(worker).value("stream_app_sessions_expired_total") == 3,
        what="three sessions expired",
    )
    assert [worker.get(f"/sessions/{sid}")[0] for sid in ("gone", "paid", "cart", "live")] == [
        404, 404, 404, 200,
    ]  # fmt: skip

    # Under exactly_once the tombstones become readable when their transaction commits.
    latest: dict[str, bytes | None] = {}

    async def tombstoned() -> bool:
        changelog = await read_all(bootstrap, f"{settings.app_id}-sessions-changelog")
        latest.update({record.key.decode(): record.value for record in changelog})
        return any(value is None for value in latest.values())

    await wait_until(tombstoned, what="tombstones on the changelog")
    assert {key for key, value in latest.items() if value is None} == {"gone", "paid", "cart"}
    assert {key for key, value in latest.items() if value is not None} == {"live", "tick"}
    snapshots = await read_all(bootstrap, settings.output_topic)
    assert sorted(r.key.decode() for r in snapshots if r.value is None) == ["cart", "gone", "paid"]

    # A return for the removed closed session: unknown, dead-lettered.
    give_back = event("p2", "paid", type_="return", occurred_at=at(99),
                      returnedCartItems=[{"position": 0}])  # fmt: skip
    await send(bootstrap, topic, [("paid", give_back)])
    [(_, dead)] = await read_until(bootstrap, settings.dlq_topic, lambda records: len(records) >= 1)
    assert dead["error"]["code"] == "session_not_found"
    worker.stop()

    # Empty data directory: the state comes back from the changelog, without the removed ones.
    restored = start_worker(replace(settings, instance_id=settings.group_instance_id))
    await wait_until(lambda: restored.get("/sessions/live")[0] == 200, what="the restore")
    assert [restored.get(f"/sessions/{sid}")[0] for sid in ("gone", "paid", "cart", "tick")] == [
        404, 404, 404, 200,
    ]  # fmt: skip
    # A new session under a removed id starts afresh.
    await send(bootstrap, topic, [("gone", event("g9", "gone", occurred_at=at(100)))])
    await wait_until(lambda: restored.get("/sessions/gone")[0] == 200, what="the new session")
    session = json.loads(restored.get("/sessions/gone")[1])
    assert (session["state"], session["updateCount"]) == ("open", 1)
