"""One worker per data directory; a cleanly stopped worker hands its partitions over at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dev.drills.rolling import measure_rolling_restart
from dev.harness.kafka import client_security
from dev.harness.workers import WorkerProcess, settings_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _members(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    await admin.start()
    try:
        [described] = (await admin.describe_consumer_groups([group]))[0].groups
    finally:
        await admin.close()
    members = described[5]  # (error, group, state, protocol type, protocol, members)
    return [member[0] for member in members]


async def test_a_second_worker_on_a_data_dir_in_use_refuses_to_start(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    first = start_worker(partitions=2)
    tables = first.settings.data_dir / "v1" / "tables"
    before = sorted(path.name for path in tables.iterdir())
    second = start_worker(settings=first.settings, data_dir=first.settings.data_dir, wait=False)
    assert second.process is not None
    assert second.process.wait(timeout=60) != 0
    assert "is in use by a running worker" in second.tail()
    # The first worker goes on, its local tables untouched.
    assert first.health() == 200
    assert sorted(path.name for path in tables.iterdir()) == before


async def test_a_cleanly_stopped_worker_keeps_its_static_membership(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    # A rolling upgrade: the worker comes back under the same id, so nothing must move.
    worker = start_worker(partitions=2)
    group = worker.settings.app_id
    [member] = await _members(bootstrap, group)
    # Static membership: the member id starts with the worker's instance id.
    assert member.startswith(worker.settings.group_instance_id)
    assert worker.stop(timeout=60) == 0
    assert f"still a member of group {group}" in worker.tail(80)
    assert "left group" not in worker.tail(80)
    assert await _members(bootstrap, group) == [member]


async def test_with_leave_group_on_stop_a_cleanly_stopped_worker_leaves_its_group(
    start_worker: Callable[..., WorkerProcess],
    bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    # A scale-down: the worker is not coming back, its partitions go to the others at once.
    settings = settings_for(bootstrap, unique_name("leave"), tmp_path / "unused", partitions=2)
    worker = start_worker(replace(settings, leave_group_on_stop=True))
    group = worker.settings.app_id
    [member] = await _members(bootstrap, group)
    assert member.startswith(worker.settings.group_instance_id)
    assert worker.stop(timeout=60) == 0
    assert f"left group {group}" in worker.tail(80)
    assert await _members(bootstrap, group) == []


async def test_a_rolling_restart_moves_no_partition_and_rebalances_no_one(
    bootstrap: str, tmp_path: Path
) -> None:
    result = await measure_rolling_restart(
        bootstrap, tmp_path, workers=2, partitions=4, rate=200.0, settle=3.0
    )
    assert result.moves == []
    assert result.rebalances == [0, 0]
    # Nothing was lost on the way: every event sent has its snapshot.
    assert result.snapshots == result.events > 0
