"""Scale-out and state durability: two workers, restarts, and restore from the changelog."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from dev.harness.settle import scrape, settle, wait_until
from dev.harness.workers import WorkerProcess
from dev.harness.workload import generate_workload
from tests.integration.helpers import event, read_json, read_until, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SESSIONS = 300
EVENTS = 2500


def without_first_session(snapshot: dict[str, Any]) -> dict[str, Any]:
    """firstSession depends on which claim reached the profile table first: compared apart."""
    return {k: v for k, v in snapshot.items() if k != "firstSession"}


async def test_two_workers_reach_the_same_state_as_one(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    records = list(generate_workload(seed=7, sessions=SESSIONS, events=EVENTS))
    sessions = {key for key, _ in records if key is not None}

    single = start_worker(partitions=4)
    await send(bootstrap, single.settings.input_topic, records)
    await settle(single, records=EVENTS, timeout=120)

    first = start_worker(partitions=4, prefix="pair")
    second = start_worker(settings=first.settings)
    await wait_until(
        lambda: first.health() == 200 and second.health() == 200, what="both workers healthy"
    )
    await send(bootstrap, first.settings.input_topic, records)
    await settle(first, second, records=EVENTS, timeout=120)
    # Both workers did part of the work.
    assert (await scrape(first)).events_consumed > 0
    assert (await scrape(second)).events_consumed > 0

    one = await _settled(bootstrap, single.settings.output_topic)
    two = await _settled(bootstrap, first.settings.output_topic)
    assert set(one) == set(two)
    assert set(one) <= sessions
    assert len(one) > SESSIONS * 0.9
    for sid in one:
        assert without_first_session(one[sid]) == without_first_session(two[sid]), sid

    firsts = [s for s in two.values() if s["profileId"] and s["firstSession"]]
    profiles = {(s["applicationId"], s["profileId"]) for s in two.values() if s["profileId"]}
    assert len(firsts) <= len(profiles)

    # Any worker answers for any session: the owner's answer is routed through.
    for sid in sorted(two)[:40]:
        for worker in (first, second):
            status, body = worker.get(f"/sessions/{sid}")
            assert status == 200, (sid, worker.settings.web_port, body)
            assert json.loads(body) == two[sid]
    status, body = first.get("/sessions/no-such-session")
    assert status == 404
    assert "error" in json.loads(body)


async def _settled(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """Latest snapshot per key once two reads in a row see the same number of records."""
    previous: list[Any] = []
    records = await read_json(bootstrap, topic)
    while len(records) != len(previous):
        previous = records
        records = await read_json(bootstrap, topic)
    return {key: value for key, value in records if key is not None}


async def test_restart_keeps_state_and_empty_data_dir_restores_from_changelog(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    cart = [{"sku": "A", "quantity": 3, "price": 2.5}]
    worker = start_worker(partitions=4)
    settings = worker.settings
    first_batch = [(f"r-{n}", event(f"r-{n}-1", f"r-{n}", session={"cartItems": cart}))
                   for n in range(50)]  # fmt: skip
    await send(bootstrap, settings.input_topic, first_batch)
    await read_until(bootstrap, settings.output_topic, lambda rs: len(rs) >= 50)
    before = {sid: worker.get(f"/sessions/{sid}") for sid, _ in first_batch}
    assert all(status == 200 for status, _ in before.values())
    worker.stop()

    # Same data directory: the worker comes back with its state.
    restarted = start_worker(settings=settings, data_dir=settings.data_dir)
    for sid, (_, body) in before.items():
        assert restarted.get(f"/sessions/{sid}") == (200, body)
    # Replayed eventIds are still known, new ones apply on top.
    second_batch = [(f"r-{n}", event(f"r-{n}-1", f"r-{n}")) for n in range(50)]
    second_batch += [(f"r-{n}", event(f"r-{n}-2", f"r-{n}", session={"state": "closed"}))
                     for n in range(50)]  # fmt: skip
    await send(bootstrap, settings.input_topic, second_batch)
    await read_until(bootstrap, settings.output_topic, lambda rs: len(rs) >= 100)
    restarted.stop()

    # Empty data directory: everything comes back from the changelog topic. The same instance
    # id, as a pod that lost its volume: the stopped worker is still the group's static member.
    same_member = replace(settings, instance_id=restarted.settings.group_instance_id)
    restored = start_worker(settings=same_member)
    assert restored.settings.data_dir != settings.data_dir
    for sid, _ in first_batch:
        status, body = restored.get(f"/sessions/{sid}")
        assert status == 200
        snapshot = json.loads(body)
        assert snapshot["state"] == "closed"
        assert snapshot["updateCount"] == 2
    # The restored state still remembers applied eventIds.
    await send(bootstrap, settings.input_topic, [("r-0", event("r-0-2", "r-0")),
                                               ("r-0", event("r-0-3", "r-0", session={
                                                   "state": "cancelled"}))])  # fmt: skip
    records = await read_until(
        bootstrap, settings.output_topic, lambda rs: any(v["state"] == "cancelled" for _, v in rs)
    )
    r0 = [v["updateCount"] for k, v in records if k == "r-0"]
    assert r0 == [1, 2, 3]
