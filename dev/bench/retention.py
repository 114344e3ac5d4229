"""The flat-state run of `make bench`: a long stream of sessions that each live and finish, drained
once with retention and once without, on a compressed clock.

`sessions` sessions (1,000,000 by default) are spread evenly over SPAN_DAYS days of event time;
each is created with a small cart and, the same day, closed (80 %), cancelled (10 %) or left open
(10 %, an abandoned cart); half carry a profileId shared by three sessions on average. With
retention on, every state's period is RETENTION (compressed as the clock is: a day of the
stream is a hundredth of the run), so the table should hold about RETENTION / SPAN_DAYS of the
sessions at any time; with retention off it holds them all.

Each run samples, while it drains, the sessions the worker holds (RocksDB bytes on disk and the
worker's metrics); at the end it counts the changelog's records, waits for the broker to compact
it, and restores a worker from it into an empty data directory. The changelog topics are created
beforehand with the worker's own configs except that segments roll every few seconds and
tombstones are dropped a second after compaction: the broker's compaction clock compressed like
the event clock (in production, `delete.retention.ms` keeps a tombstone a day, so a restore reads
the live sessions plus a day of removals).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dev.bench.probe import Probe, topic_bytes_on_disk
from dev.bench.runs import _dir_bytes, _logical_bytes, _table_dirs, run_restore, run_throughput
from dev.bench.targets import WorkerTarget
from dev.harness.kafka import client_security, create_topic, produce_all, read_to_end
from stream_app.settings import Settings
from stream_app.worker.app import CHANGELOG_CONFIGS
from stream_app.worker.topics import session_record_limit

SPAN_DAYS = 100
RETENTION = "2d"
#: Changelog configs of the run: the worker's, with compaction's clock compressed.
COMPRESSED_COMPACTION = {
    "segment.ms": "5000",
    "segment.bytes": str(16 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0",
    "delete.retention.ms": "1000",
    "min.compaction.lag.ms": "0",
}
#: The key of the tombstones that roll the changelog's last segments (a restore deletes it).
ROLL_KEY = b"bench-segment-roll"
#: How often a run samples the worker's state while it drains, in seconds.
SAMPLE_EVERY = 5.0
#: How long to give the broker's log cleaner after a run (its backoff is 15 s).
COMPACTION_WAIT = 45.0


def lifecycle_events(sessions: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """(key, value) of `sessions` sessions that each open and finish, in event-time order."""
    rng = random.Random(seed)
    origin = datetime.now(UTC).replace(microsecond=0) - timedelta(days=SPAN_DAYS + 10)
    step = SPAN_DAYS * 86400 / sessions
    profiles = max(1, sessions // 6)
    for n in range(sessions):
        key = f"life-{n:08}"
        at = origin + timedelta(seconds=n * step)
        profile = f', "profileId": "p-{rng.randrange(profiles)}"' if rng.random() < 0.5 else ""
        price = rng.randrange(100, 10_000) / 100
        cart = f'[{{"sku": "SKU-{rng.randrange(500)}", "quantity": 1, "price": {price}}}]'
        yield (
            key,
            (
                f'{{"eventId": "{key}-1", "type": "update", "integrationId": "{key}", '
                f'"applicationId": 1, "occurredAt": "{at.isoformat()}", '
                f'"session": {{"cartItems": {cart}{profile}}}}}'
            ).encode(),
        )
        roll = rng.random()
        if roll < 0.9:
            state = "closed" if roll < 0.8 else "cancelled"
            later = (at + timedelta(minutes=rng.randrange(1, 60))).isoformat()
            yield key, json.dumps({
                "eventId": f"{key}-2", "type": "update", "integrationId": key,
                "applicationId": 1, "occurredAt": later, "session": {"state": state},
            }).encode()  # fmt: skip


@dataclass
class StateRun:
    """One drain of the lifecycle stream, with retention on or off."""

    retention: bool
    events: int
    events_per_second: float
    cpu_us_per_event: float | None
    #: (fraction of the input committed, sessions stored, sessions-table RocksDB bytes)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    sessions_stored: int = 0
    rocksdb_bytes: int = 0
    profiles_stored: int = 0
    profiles_logical_bytes: int = 0
    profiles_rocksdb_bytes: int = 0
    changelog_records_written: int = 0
    #: Records written to the expiry index's changelog (retention on only).
    index_records_written: int = 0
    changelog_records_after_compaction: int = 0
    changelog_tombstones_after_compaction: int = 0
    changelog_bytes_after_compaction: int | None = None
    restore_seconds: float = 0.0
    restore_baseline_seconds: float | None = None
    sessions_restored: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The run as the report's JSON."""
        return dict(self.__dict__)


def with_retention(settings: Settings, period: str) -> Settings:
    """The settings with every state's retention set to `period` (e.g. 2d, forever)."""
    periods = Settings.from_env(
        {f"STREAM_APP_RETENTION_{kind}": period for kind in ("FINAL", "CLOSED", "IDLE")}
    )
    return replace(
        settings,
        retention_final=periods.retention_final,
        retention_closed=periods.retention_closed,
        retention_idle=periods.retention_idle,
    )


async def _create_changelogs(bootstrap: str, settings: Settings) -> None:
    configs = {
        **CHANGELOG_CONFIGS,
        **COMPRESSED_COMPACTION,
        "cleanup.policy": "compact",
        "max.message.bytes": str(session_record_limit(settings)),
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(f"{settings.app_id}-{table}-changelog", settings.partitions, 1,
                     topic_configs=configs)
            for table in ("sessions", "profiles", "expiries")
        ])  # fmt: skip
    finally:
        await admin.close()


async def _sample(target: WorkerTarget, events: int, run: StateRun, done: asyncio.Event) -> None:
    """Every SAMPLE_EVERY seconds: input consumed, sessions stored, RocksDB bytes."""
    while not done.is_set():
        await asyncio.sleep(SAMPLE_EVERY)
        if not target.alive():
            return
        metrics = await asyncio.to_thread(target.metrics)
        if metrics is None:
            continue
        consumed = metrics.count("stream_app_events_consumed_total")
        on_disk, _ = _dir_bytes(_table_dirs(target.settings.data_dir, "sessions"))
        stored = metrics.count("stream_app_sessions_stored")
        run.samples.append((round(consumed / events, 3), stored, on_disk))
        if consumed >= events:
            return


async def run_state(
    bootstrap: str, settings: Settings, events: int, retention: bool, log_path: Path, work: Path
) -> StateRun:
    """Drain the preloaded lifecycle stream with retention on or off; measure state and restore."""
    period = RETENTION if retention else "forever"
    settings = with_retention(settings, period)
    await _create_changelogs(bootstrap, settings)
    target = WorkerTarget(name=f"retention {period}", settings=settings, log_path=log_path)
    placeholder = StateRun(retention, events, 0.0, None)
    done = asyncio.Event()
    sampler = asyncio.create_task(_sample(target, events, placeholder, done))
    try:
        drained = await run_throughput(bootstrap, target, events)
    finally:
        done.set()
        await sampler
    run = replace(
        placeholder,
        events_per_second=drained.events_per_second,
        cpu_us_per_event=drained.cpu_us_per_event,
    )
    if drained.metrics is not None:
        run.metrics = {
            name: drained.metrics.count(name)
            for name in ("stream_app_sessions_expired_total", "stream_app_sessions_stored",
                         "stream_app_oldest_session_age_seconds",
                         "stream_app_events_applied_total")
        }  # fmt: skip
    sessions_dirs = _table_dirs(settings.data_dir, "sessions")
    run.sessions_stored, _ = _logical_bytes(sessions_dirs)
    run.rocksdb_bytes, _ = _dir_bytes(sessions_dirs)
    profile_dirs = _table_dirs(settings.data_dir, "profiles")
    run.profiles_stored, run.profiles_logical_bytes = _logical_bytes(profile_dirs)
    run.profiles_rocksdb_bytes, _ = _dir_bytes(profile_dirs)
    changelog = f"{settings.app_id}-sessions-changelog"
    index = f"{settings.app_id}-expiries-changelog"
    async with Probe(bootstrap) as probe:
        run.changelog_records_written = sum((await probe.end_offsets([changelog])).values())
        run.index_records_written = sum((await probe.end_offsets([index])).values())
    # A tombstone of a key no session has, in each partition, rolls the last segments (older
    # than segment.ms by then) so that the broker's log cleaner compacts them; a second roll
    # makes it clean again, dropping the tombstones older than delete.retention.ms.
    for _ in range(2):
        await asyncio.sleep(6.0)
        await _roll(bootstrap, changelog, settings.partitions)
        await asyncio.sleep(COMPACTION_WAIT / 2)
    records, tombstones = await _changelog_counts(bootstrap, changelog)
    run.changelog_records_after_compaction = records
    run.changelog_tombstones_after_compaction = tombstones
    run.changelog_bytes_after_compaction = topic_bytes_on_disk(changelog)
    restored = await run_restore(bootstrap, target, work / f"restore-{period}",
                                 drained.healthy_after)  # fmt: skip
    run.restore_seconds = restored.seconds_to_healthy
    run.restore_baseline_seconds = restored.baseline_seconds_to_healthy
    run.sessions_restored = restored.sessions_restored
    return run


async def _changelog_counts(bootstrap: str, topic: str) -> tuple[int, int]:
    """Records of a topic, and how many of them are tombstones."""
    records = tombstones = 0
    async for batch in read_to_end(bootstrap, [topic]):
        records += len(batch)
        tombstones += sum(1 for record in batch if record.value is None)
    return records, tombstones


async def _roll(bootstrap: str, topic: str, partitions: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **client_security())
    await producer.start()
    try:
        for partition in range(partitions):
            await producer.send_and_wait(topic, None, key=ROLL_KEY, partition=partition)
    finally:
        await producer.stop()


async def preload(bootstrap: str, topic: str, partitions: int, sessions: int, seed: int) -> int:
    """Create the input topic and write the lifecycle stream into it; the number of events."""
    await create_topic(bootstrap, topic, partitions)
    started = time.monotonic()
    count = await produce_all(bootstrap, topic, lifecycle_events(sessions, seed))
    print(f"  preloaded {count:,} events in {time.monotonic() - started:.0f} s", flush=True)
    return count
