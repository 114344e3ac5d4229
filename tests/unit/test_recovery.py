"""Restoring a table after rebalances: records fetched before a rebalance leave no hole.

Drives the worker's real recovery (ExactRecovery.on_rebalance and its changelog loop) with
hand-made changelog records, no broker: the consumer's part is played by putting records on
the changelog queue in the order a fetcher would have delivered them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.assignor.client_assignment import ClientAssignment
from faust.types import TP

from stream_app.settings import Settings
from stream_app.worker.app import create_worker
from stream_app.worker.overrides.recovery import ExactRecovery


class Changelog:
    """The sessions table's changelog partition 0 and the worker's recovery reading it."""

    def __init__(self, data_dir: Path) -> None:
        settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(data_dir), "STREAM_APP_ID": "t"})
        self.app: Any = create_worker(settings, partitions=1).app
        self.table: Any = self.app.tables["sessions"]
        self.table.recovery_buffer_size = 1  # write each record to RocksDB as it is read
        self.tp = TP(self.table.changelog_topic.get_topic_name(), 0)
        self.recovery: ExactRecovery = self.app.tables.recovery
        self.generation = 0

    async def rebalance(self, assigned: bool) -> None:
        """A new generation in which partition 0 is assigned here (active) or not at all."""
        self.generation += 1
        self.app.consumer_generation_id = self.generation
        actives = {self.tp.topic: [0]} if assigned else {}
        self.app.assignor._assignment = ClientAssignment(actives=actives, standbys={})
        tps = {self.tp} if assigned else set()
        revoked = set() if assigned else {self.tp}
        await self.recovery.on_rebalance(tps, revoked, tps, self.generation)

    def fetched(self, offsets: range) -> None:
        """Records the consumer hands over, each one setting key k<offset>."""
        for offset in offsets:
            message = SimpleNamespace(
                tp=self.tp, topic=self.tp.topic, partition=0, offset=offset,
                key=f"k{offset}".encode(), value=f"v{offset}".encode(),
            )  # fmt: skip
            self.app.tables.changelog_queue.put_nowait(SimpleNamespace(message=message))

    async def read(self) -> None:
        """Run the recovery loop until it has taken everything queued."""
        loop = asyncio.ensure_future(ExactRecovery._slurp_changelogs(self.recovery))
        queue = self.app.tables.changelog_queue
        for _ in range(500):  # the loop takes what is queued within milliseconds
            if queue.empty():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop

    def stored(self) -> set[int]:
        """Offsets whose record is in the local table."""
        db = self.table.data._db_for_partition(0)
        return {offset for offset in range(20) if db.get(f"k{offset}".encode()) is not None}


def test_records_fetched_before_a_rebalance_leave_no_hole_in_the_restored_table(
    tmp_path: Path,
) -> None:
    async def scenario() -> set[int]:
        changelog = Changelog(tmp_path)
        await changelog.rebalance(assigned=True)
        changelog.fetched(range(5))
        await changelog.read()  # 0-4 restored
        # The fetcher had already handed over 5-9 when the partition was taken away; the
        # loop skipped 5-7 as no longer assigned here, then the partition came back.
        changelog.fetched(range(5, 8))
        await changelog.rebalance(assigned=False)
        await changelog.read()
        changelog.fetched(range(8, 10))
        await changelog.rebalance(assigned=True)
        # Recovery seeks to the last restored offset and the consumer fetches 4-9 again.
        changelog.fetched(range(4, 10))
        await changelog.read()
        return changelog.stored()

    assert asyncio.run(scenario()) == set(range(10))


def test_a_restore_logs_its_start_and_its_end_with_counts_and_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        changelog = Changelog(tmp_path)
        await changelog.rebalance(assigned=True)
        recovery = changelog.recovery
        recovery._set_recovery_started()  # as Faust's recovery does before it seeks
        # What building highwaters and offsets finds: offsets 0-9 to restore, none seen yet.
        recovery.active_highwaters[changelog.tp] = 9
        recovery.active_offsets[changelog.tp] = -1
        sought: list[dict[TP, int]] = []

        async def seek_wait(offsets: dict[TP, int]) -> None:
            sought.append(offsets)

        consumer = SimpleNamespace(seek_wait=seek_wait)
        tps = {changelog.tp}
        await recovery._seek_offsets(consumer, set(), recovery.standby_offsets, "standby")
        await recovery._seek_offsets(consumer, tps, recovery.active_offsets, "active")
        assert sought == [{}, {changelog.tp: 0}]
        changelog.fetched(range(10))
        await changelog.read()
        recovery.restore_ended_now()
        recovery.restore_ended_now()  # no restore in progress: nothing more is logged

    caplog.set_level(logging.INFO, logger="stream_app.worker.overrides.recovery")
    asyncio.run(scenario())

    lines = [
        r.getMessage() for r in caplog.records if r.name == "stream_app.worker.overrides.recovery"
    ]
    assert len(lines) == 2
    assert lines[0] == "restore started: 10 changelog records to restore on 1 partitions"
    assert re.fullmatch(
        r"restore done: 10 changelog records restored \(of 10 offsets\) in \d+\.\d s "
        r"\(\d+ records/s\)",
        lines[1],
    ), lines[1]
