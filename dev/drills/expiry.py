"""The expiry drill: kill -9 while retention removes sessions; nothing live is lost, nothing
removed comes back (contract section 10).

Sessions are written in event-time order over 100 days of a compressed clock, each created and
then closed, cancelled or left open on one day; then ticks (one session per partition) move every
partition's stream time past the last day and keep batches, hence sweeps, running. The worker is
killed at random moments throughout. The expected table is known from the retention rules
alone: a session is live when its state's retention has not passed between its day and the final
stream time. The drill waits until the sessions changelog (latest record per key, what a restore
reads) holds exactly the live sessions, each in its expected state, then wipes the worker's data
directory and checks every session over HTTP after the restore. A session is expected removed
when its expiry index entry is due at the final stream time (contract section 10).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.partitioner import murmur2

from dev.drills.drill import Drill, DrillOptions
from dev.drills.scenarios import DrillResult
from dev.harness.kafka import read_all
from dev.harness.settle import WaitTimeout, wait_until
from stream_app.domain import decode_stored
from stream_app.domain.retention import SessionClock, due_before, index_key
from stream_app.settings import Settings

#: Days of the compressed clock the sessions are spread over, and the ticks' day after them.
FIRST_DAY, LAST_DAY, TICK_DAY = 100, 200, 201
STATES = ("open", "closed", "cancelled")


def _event(event_id: str, integration_id: str, at: datetime, state: str | None) -> bytes:
    session: dict[str, Any] = {"cartItems": [{"sku": "SKU-1", "quantity": 1, "price": 9.5}]}
    if state is not None:
        session = {"state": state}
    return json.dumps({
        "eventId": event_id, "type": "update", "integrationId": integration_id,
        "applicationId": 1, "occurredAt": at.isoformat(), "session": session,
    }).encode()  # fmt: skip


def _partition(key: str, partitions: int) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _tick_keys(partitions: int) -> list[str]:
    """One key per partition, so that every partition's stream time moves."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions:
        keys.setdefault(_partition(f"tick-{n}", partitions), f"tick-{n}")
        n += 1
    return [keys[p] for p in range(partitions)]


async def _live_in_changelog(drill: Drill) -> dict[str, tuple[str, int]]:
    """(state, updateCount) of every session whose latest changelog record is not a tombstone."""
    latest: dict[str, bytes | None] = {}
    for record in await read_all(drill.bootstrap, f"{drill.prefix}-sessions-changelog"):
        latest[record.key.decode()] = record.value
    live: dict[str, tuple[str, int]] = {}
    for key, value in latest.items():
        if value is not None:
            session = decode_stored(value).session
            live[key] = (session.state, session.update_count)
    return live


async def expiry(
    options: DrillOptions,
    sessions: int = 3_000,
    kills: int = 8,
    rate: float = 150.0,
    guarantee: str = "exactly_once",
) -> DrillResult:
    """SIGKILL the worker while retention removes sessions; check the table after a restore."""
    name = "expiry" if guarantee == "exactly_once" else "expiry_at_least_once"
    result = DrillResult(name)
    started = time.monotonic()
    rng = random.Random(f"{options.seed}-{name}")
    origin = datetime.now(UTC).replace(microsecond=0) - timedelta(days=TICK_DAY + 30)
    async with Drill(options, name.replace("_", "-"), guarantee=guarantee) as drill:
        settings: Settings = drill.settings
        retention = settings.retention
        final_time = origin + timedelta(days=TICK_DAY)
        plan = sorted(
            (rng.uniform(FIRST_DAY, LAST_DAY), f"s-{n:05}", rng.choice(STATES))
            for n in range(sessions)
        )
        records: list[tuple[str | None, bytes]] = []
        expected: dict[str, tuple[str, int]] = {}
        removed: set[str] = set()
        for day, key, state in plan:
            at = origin + timedelta(days=day)
            records.append((key, _event(f"{key}-1", key, at, None)))
            if state != "open":
                records.append((key, _event(f"{key}-2", key, at, state)))
            # Removed once due in the expiry index: at most one bucket (1/64 of the state's
            # retention) after it expired; the ticks keep stream time at the final time.
            entry = index_key(key, SessionClock(state, at), retention)  # type: ignore[arg-type]
            due = due_before(state, final_time, retention)  # type: ignore[arg-type]
            if entry is not None and due is not None and entry < due:
                removed.add(key)
            else:
                expected[key] = (state, 1 if state == "open" else 2)
        ticks = _tick_keys(settings.partitions)
        tick_records: list[tuple[str | None, bytes]] = [
            (key, _event(f"{key}-{n}", key, final_time, None))
            for n in range(20_000)
            for key in ticks
        ]
        result.figures.update(sessions=sessions, expected_live=len(expected),
                              expected_removed=len(removed), kills=kills, guarantee=guarantee,
                              rate_per_s=rate)  # fmt: skip

        worker = drill.worker()
        await drill.start(worker)
        producer = drill.producer(records, rate).start()
        ticker = drill.producer(tick_records, rate=20.0 * len(ticks))

        async def sessions_then_ticks() -> None:
            await producer.wait()
            await ticker.start().wait()

        writing = asyncio.create_task(sessions_then_ticks())
        try:
            # Kills spread over the sessions' production and the sweeps after it.
            span = len(records) / rate + 20.0
            for _ in range(kills):
                await asyncio.sleep(rng.uniform(0.5, 2 * span / kills))
                await drill.kill(worker)
                await drill.spawn(worker)
                await asyncio.to_thread(worker.wait_healthy, 180.0)
            await producer.wait()
            live: dict[str, tuple[str, int]] = {}

            async def settled() -> bool:
                nonlocal live
                live = await _live_in_changelog(drill)
                return {k: v for k, v in live.items() if not k.startswith("tick-")} == expected

            try:
                waited = await wait_until(settled, timeout=300.0, interval=2.0,
                                          what="the changelog to hold exactly the live sessions",
                                          check=drill.check_workers_alive)  # fmt: skip
                result.figures["settled_after_s"] = round(waited, 1)
            except WaitTimeout:
                pass
            lost = sorted(set(expected) - set(live))
            resurrected = sorted(removed & set(live))
            wrong = sorted(k for k in set(expected) & set(live) if live[k] != expected[k])
            if lost:
                result.fail(f"{len(lost)} live sessions lost, e.g. {lost[:3]}")
            if resurrected:
                result.fail(f"{len(resurrected)} removed sessions in the changelog, "
                            f"e.g. {resurrected[:3]}")  # fmt: skip
            if wrong:
                result.fail(f"{len(wrong)} sessions in another state, e.g. {wrong[0]}: "
                            f"{live[wrong[0]]} != {expected[wrong[0]]}")  # fmt: skip
        finally:
            writing.cancel()
            if ticker.task is not None:
                ticker.task.cancel()

        # What a restore makes of it: the data directory wiped, every session asked for.
        await drill.stop(worker)
        shutil.rmtree(worker.settings.data_dir)
        result.figures["wiped_restart_to_healthy_s"] = round(await drill.start(worker), 1)
        answers = await asyncio.to_thread(_statuses, worker, [key for _, key, _ in plan])
        served_removed = sorted(k for k in removed if answers[k] != 404)
        missing = sorted(k for k in expected if answers[k] != 200)
        if served_removed:
            result.fail(f"{len(served_removed)} removed sessions served after the restore, "
                        f"e.g. {served_removed[:3]}")  # fmt: skip
        if missing:
            result.fail(f"{len(missing)} live sessions not served after the restore, "
                        f"e.g. {missing[:3]}")  # fmt: skip
        drill.check_workers_alive()
    return result.done(started)


def _statuses(worker: Any, keys: list[str]) -> dict[str, int]:
    return {key: worker.get(f"/sessions/{urllib.parse.quote(key, safe='')}")[0] for key in keys}


async def expiry_at_least_once(options: DrillOptions, **sizes: Any) -> DrillResult:
    """The expiry drill under at_least_once."""
    return await expiry(options, guarantee="at_least_once", **sizes)
