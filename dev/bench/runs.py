"""One measurement each: throughput on a preloaded topic, latency at an offered rate, state size
on disk, and restore from the changelog."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import msgspec
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dev.bench.probe import Probe, first_timestamp, topic_bytes_on_disk
from dev.bench.targets import Target, WorkerTarget, cpu_seconds, peak_rss_kib
from dev.harness.kafka import client_security, count_records
from dev.harness.metrics import WorkerMetrics

Record = tuple[str | None, bytes]

#: Seconds between two polls of the broker (committed offsets) and the worker (/metrics).
POLL = 0.25
#: The run is over once the committed offsets have not moved for this long.
SETTLE = 2.0


@dataclass
class Throughput:
    """One process draining a preloaded topic."""

    name: str
    events: int
    launched: float
    first_output: float
    done: float
    healthy_after: float | None
    peak_rss_kib: int | None
    metrics: WorkerMetrics | None
    #: CPU seconds the process used from its first output record to the end.
    cpu_seconds: float | None = None
    #: (seconds since first output, input records committed)
    progress: list[tuple[float, int]] = field(default_factory=list)
    output_records: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """From the first output record to the last input offset committed."""
        return self.done - self.first_output

    @property
    def events_per_second(self) -> float:
        """Input records per second, startup excluded."""
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float | None:
        """CPU microseconds per input record: on a shared machine, steadier than wall time."""
        return None if self.cpu_seconds is None else self.cpu_seconds / self.events * 1e6

    @property
    def startup_seconds(self) -> float:
        """From spawning the process to its first output record."""
        return self.first_output - self.launched


async def run_throughput(
    bootstrap: str, target: Target, events: int, timeout: float = 3600.0
) -> Throughput:
    """Start `target` on its preloaded input topic and time it until everything is committed.

    Done means: every input record's offset is committed by the target's group, the worker has
    an outcome for every record and a verdict for every claim (`WorkerMetrics.finished`), and
    the group's committed offsets (of every topic it consumes) did not move for SETTLE seconds.
    The end time is
    the first poll that saw the final committed offsets; the start time is the producer timestamp
    of the first output record, so that startup (imports, group join) is reported apart.
    """
    await target.prepare()
    polls: list[tuple[float, dict[TopicPartition, int]]] = []
    cpu: list[tuple[float, float | None]] = []
    healthy_at: float | None = None
    metrics: WorkerMetrics | None = None
    launched = time.time()
    target.start()
    try:
        async with Probe(bootstrap) as probe:
            while True:
                await asyncio.sleep(POLL)
                now = time.time()
                if not target.alive():
                    raise RuntimeError(f"{target.name} exited during the run:\n{target.tail()}")
                if now - launched > timeout:
                    raise TimeoutError(f"{target.name} did not finish in {timeout:.0f}s")
                cpu.append((now, cpu_seconds(target.pid())))
                committed = await probe.committed(target.group, target.consumed)
                polls.append((now, committed))
                if healthy_at is None and await asyncio.to_thread(target.ready):
                    healthy_at = now
                input_done = (
                    sum(o for tp, o in committed.items() if tp.topic == target.input_topic)
                    >= events
                )
                if not input_done:
                    continue
                metrics = await asyncio.to_thread(target.metrics)
                if metrics is not None and not metrics.finished(events):
                    continue
                if now - _unchanged_since(polls) >= SETTLE:
                    break
        done = _unchanged_since(polls)
        rss = peak_rss_kib(target.pid())
        metrics = await asyncio.to_thread(target.metrics)
        cpu.append((time.time(), cpu_seconds(target.pid())))
    finally:
        await asyncio.to_thread(target.stop)
    first = await first_timestamp(bootstrap, target.outputs)
    if first is None:
        raise RuntimeError(f"{target.name} wrote nothing")
    if target.keeps_input_timestamps:
        # Its outputs carry their input's timestamp (Quix Streams does so by default): the
        # first poll that saw it ready stands in for its first output.
        first = healthy_at if healthy_at is not None else launched
    progress = [
        (t - first, sum(o for tp, o in c.items() if tp.topic == target.input_topic))
        for t, c in polls
        if t <= done + 1
    ]
    result = Throughput(
        name=target.name,
        events=events,
        launched=launched,
        first_output=first,
        done=done,
        healthy_after=None if healthy_at is None else healthy_at - launched,
        peak_rss_kib=rss,
        metrics=metrics,
        cpu_seconds=_cpu_between(cpu, first, done),
        progress=progress,
    )
    if isinstance(target, WorkerTarget):
        settings = target.settings
        result.output_records = await count_records(
            bootstrap, [settings.output_topic, settings.transitions_topic, settings.dlq_topic]
        )
    return result


def _cpu_between(
    samples: list[tuple[float, float | None]], start: float, end: float
) -> float | None:
    """CPU seconds used between two times, from the samples nearest to them."""
    known = [(t, c) for t, c in samples if c is not None]
    if not known:
        return None
    at_start = min(known, key=lambda s: abs(s[0] - start))[1]
    at_end = min(known, key=lambda s: abs(s[0] - end))[1]
    return at_end - at_start


def _unchanged_since(polls: list[tuple[float, dict[TopicPartition, int]]]) -> float:
    """Time of the earliest poll in the trailing run of polls that saw the latest offsets."""
    latest = polls[-1][1]
    since = polls[-1][0]
    for at, committed in reversed(polls):
        if committed != latest:
            break
        since = at
    return since


# ----------------------------------------------------------------------------------- latency


class _SnapshotKey(msgspec.Struct):
    integrationId: str
    updateCount: int


class _EventKey(msgspec.Struct):
    eventId: str


_snapshot_key = msgspec.json.Decoder(_SnapshotKey)
_event_key = msgspec.json.Decoder(_EventKey)


def snapshot_key(raw: bytes) -> Hashable | None:
    """(integrationId, updateCount) of a CustomerSession snapshot."""
    try:
        decoded = _snapshot_key.decode(raw)
    except msgspec.DecodeError:
        return None
    return (decoded.integrationId, decoded.updateCount)


def event_key(raw: bytes) -> Hashable | None:
    """eventId of the raw loop's output (the decoded event re-encoded); None for its errors."""
    try:
        return _event_key.decode(raw).eventId
    except msgspec.DecodeError:
        return None


@dataclass
class Latency:
    """Produce-to-visible latency of one process at a fixed offered rate."""

    name: str
    rate: float
    duration: float
    warmup: float
    offered: int
    expected: int
    seen: int
    #: Snapshots of records that claim a profile (held until the verdict), seen.
    seen_after_verdict: int
    #: Produce-to-visible seconds of every output expected from a record sent after the
    #: warm-up, as (seconds, lower_bound): lower_bound when it was never seen (then the
    #: seconds are how long it had been waited for).
    samples: list[tuple[float, bool]]
    #: Same, for outputs that were not held for a verdict (direct).
    direct_samples: list[tuple[float, bool]]
    #: (seconds since the first produce, latency) of every seen output.
    series: list[tuple[float, float]]
    achieved_rate: float
    peak_rss_kib: int | None
    #: Expected snapshots never seen because a later snapshot of the session replaced them
    #: (held while a firstSession verdict was pending): not counted.
    superseded: int = 0
    #: Expected outputs never seen in time: counted, as lower bounds.
    missing: int = 0
    #: Per stage of the worker's path (stream_app_stage_seconds) and of the reader's, the
    #: p50 and p99 in seconds over the records sent after the warm-up (empty for the raw loop).
    stages: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def percentile(self, q: float, direct: bool = False) -> float | None:
        """The q-th percentile (0..100) of the latencies after the warm-up, in seconds.

        Outputs never seen sort after every seen one; `is_lower_bound` tells whether the
        percentile landed on one of them.
        """
        value = self._ranked(q, direct)
        return None if value is None else value[0]

    def is_lower_bound(self, q: float, direct: bool = False) -> bool:
        """Whether the q-th percentile is an output that was never seen (a lower bound)."""
        value = self._ranked(q, direct)
        return value is not None and value[1]

    def _ranked(self, q: float, direct: bool) -> tuple[float, bool] | None:
        values = sorted(self.direct_samples if direct else self.samples, key=lambda s: (s[1], s[0]))
        if not values:
            return None
        rank = max(0, math.ceil(q / 100 * len(values)) - 1)
        return values[rank]


async def run_latency(
    bootstrap: str,
    target: Target,
    records: Sequence[Record],
    keys: Sequence[Hashable | None],
    matcher: Callable[[bytes], Hashable | None],
    rate: float,
    duration: float,
    warmup: float,
    claiming: frozenset[int] = frozenset(),
    drain: float = 15.0,
) -> Latency:
    """Offer `records` at `rate`/s to the target's (empty) input and time each expected output.

    keys[i] is the output key the i-th record should produce (None: no output expected); an
    output whose key appears for several records is matched to the first of them.
    """
    count = min(len(records), int(rate * duration))
    index_of: dict[Hashable, int] = {}
    for i, key in enumerate(keys[:count]):
        if key is not None and key not in index_of:
            index_of[key] = i
    sent_at = [0.0] * count
    seen: dict[Hashable, float] = {}
    #: The output record's timestamp: when the worker built the record batch holding it.
    written_at: dict[Hashable, float] = {}
    after_warmup: WorkerMetrics | None = None
    await target.prepare()
    target.start()
    await target.wait_ready()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
        **client_security(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=0, **client_security()
    )
    await consumer.start()
    await producer.start()
    rss: int | None = None
    at_end: WorkerMetrics | None = None
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(target.visible) or set()
        tps = [TopicPartition(target.visible, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        stop = asyncio.Event()
        all_seen = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for messages in batch.values():
                    for message in messages:
                        key = matcher(message.value or b"")
                        if key is not None and key not in seen:
                            seen[key] = now
                            written_at[key] = message.timestamp / 1000
                if len(seen) >= len(index_of):
                    all_seen.set()

        watcher = asyncio.create_task(watch())
        loop = asyncio.get_running_loop()
        started = loop.time()
        wall_start = time.time()
        sent = 0
        while sent < count:
            if after_warmup is None and loop.time() - started >= warmup:
                after_warmup = await asyncio.to_thread(target.metrics)
            due = min(count, int((loop.time() - started) * rate) + 1)
            while sent < due:
                key, value = records[sent]
                sent_at[sent] = time.time()
                await producer.send(
                    target.input_topic, value, key=None if key is None else key.encode()
                )
                sent += 1
            await asyncio.sleep(0.001)
        await producer.flush()
        deadline = loop.time() + drain
        while loop.time() < deadline and _unaccounted(index_of, seen):
            # Seen, or replaced by a later snapshot of the same session (held ones).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_seen.wait(), 0.5)
        waited_until = time.time()
        rss = peak_rss_kib(target.pid())
        at_end = await asyncio.to_thread(target.metrics)
        stop.set()
        await watcher
    finally:
        await producer.stop()
        await consumer.stop()
        await asyncio.to_thread(target.stop)

    samples: list[tuple[float, bool]] = []
    direct: list[tuple[float, bool]] = []
    series: list[tuple[float, float]] = []
    after_verdict = 0
    last_seen = wall_start
    newest: dict[Any, int] = {}
    for key in seen:
        if isinstance(key, tuple):
            newest[key[0]] = max(newest.get(key[0], 0), key[1])
    superseded = missing = 0
    for key, i in index_of.items():
        at = seen.get(key)
        if at is None:
            if isinstance(key, tuple) and newest.get(key[0], 0) > key[1]:
                superseded += 1  # held, then replaced by a later snapshot of the session
                continue
            missing += 1
            sample = (waited_until - sent_at[i], True)
        else:
            sample = (at - sent_at[i], False)
            last_seen = max(last_seen, at)
            series.append((sent_at[i] - wall_start, sample[0]))
            if i in claiming:
                after_verdict += 1
        if sent_at[i] - wall_start >= warmup:
            samples.append(sample)
            if i not in claiming:
                direct.append(sample)
    series.sort()
    stages = worker_stages(after_warmup, at_end)
    if stages:
        # The reader's part: from the output record's timestamp to it being seen.
        visible = sorted(
            seen[key] - written_at[key]
            for key, i in index_of.items()
            if key in seen and sent_at[i] - wall_start >= warmup
        )
        stages["visible"] = (_ranked(visible, 0.5), _ranked(visible, 0.99))
    return Latency(
        name=target.name,
        rate=rate,
        duration=duration,
        warmup=warmup,
        offered=count,
        expected=len(index_of),
        seen=len(series),
        seen_after_verdict=after_verdict,
        samples=samples,
        direct_samples=direct,
        series=series,
        achieved_rate=len(series) / max(1e-9, last_seen - wall_start),
        peak_rss_kib=rss,
        superseded=superseded,
        missing=missing,
        stages=stages,
    )


#: The worker's stages in order (stream_app_stage_seconds{stage}; see docs/performance.md).
STAGES = ("fetch", "queue", "lock", "apply", "write", "deliver")


def worker_stages(
    before: WorkerMetrics | None, after: WorkerMetrics | None
) -> dict[str, tuple[float | None, float | None]]:
    """p50 and p99 of each worker stage between two scrapes (empty without scrapes)."""
    if after is None:
        return {}
    stages = {
        stage: (
            after.quantile("stream_app_stage_seconds", 0.5, before, stage=stage),
            after.quantile("stream_app_stage_seconds", 0.99, before, stage=stage),
        )
        for stage in STAGES
    }
    # Not a stage of a record: how long one commit took (processing waits for it: "lock").
    stages["commit"] = (
        after.quantile("stream_app_commit_seconds", 0.5, before),
        after.quantile("stream_app_commit_seconds", 0.99, before),
    )
    return stages


def _ranked(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def _unaccounted(index_of: dict[Hashable, int], seen: dict[Hashable, float]) -> int:
    """Expected outputs neither seen nor replaced by a later snapshot of their session."""
    newest: dict[Any, int] = {}
    for key in seen:
        if isinstance(key, tuple):
            newest[key[0]] = max(newest.get(key[0], 0), key[1])
    return sum(
        1
        for key in index_of
        if key not in seen and not (isinstance(key, tuple) and newest.get(key[0], 0) > key[1])
    )


# ------------------------------------------------------------------------- state and restore


@dataclass
class StateSize:
    """A worker's session state after a run: on local disk, logically, and in the changelog."""

    sessions: int
    rocksdb_bytes: int
    rocksdb_sst_bytes: int
    logical_bytes: int
    changelog_bytes: int | None
    changelog_records: int


def _dir_bytes(paths: list[Path]) -> tuple[int, int]:
    total = sst = 0
    for path in paths:
        for file in path.rglob("*"):
            if file.is_file():
                size = file.stat().st_size
                total += size
                if file.suffix == ".sst":
                    sst += size
    return total, sst


def _table_dirs(data_dir: Path, table: str) -> list[Path]:
    return sorted(p for p in data_dir.rglob(f"{table}-*.db") if p.is_dir())


def _logical_bytes(paths: list[Path]) -> tuple[int, int]:
    keys = total = 0
    options = rocksdict.Options(raw_mode=True)
    for path in paths:
        db = rocksdict.Rdict(
            str(path), options=options, access_type=rocksdict.AccessType.read_only()
        )
        try:
            for stored_key, stored_value in db.items():
                keys += 1
                # raw_mode: both are bytes
                total += len(cast(bytes, stored_key)) + len(cast(bytes, stored_value))
        finally:
            db.close()
    return keys, total


async def measure_state(bootstrap: str, target: WorkerTarget) -> StateSize:
    """Measure the stopped worker's sessions table: RocksDB files, key+value bytes, changelog."""
    dirs = _table_dirs(target.settings.data_dir, "sessions")
    on_disk, sst = _dir_bytes(dirs)
    sessions, logical = _logical_bytes(dirs)
    changelog = f"{target.group}-sessions-changelog"
    records = (await count_records(bootstrap, [changelog]))[changelog]
    return StateSize(
        sessions=sessions,
        rocksdb_bytes=on_disk,
        rocksdb_sst_bytes=sst,
        logical_bytes=logical,
        changelog_bytes=topic_bytes_on_disk(changelog),
        changelog_records=records,
    )


@dataclass
class Restore:
    """A worker rebuilding its tables from the changelogs into an empty data dir."""

    changelog_records: int
    seconds_to_healthy: float
    #: A worker with nothing to restore (the throughput run's own start), for comparison.
    baseline_seconds_to_healthy: float | None
    sessions_restored: int

    @property
    def records_per_second(self) -> float:
        """Changelog records over the whole time to /health 200."""
        return self.changelog_records / self.seconds_to_healthy

    @property
    def net_records_per_second(self) -> float | None:
        """Changelog records over the time beyond an empty worker's start."""
        if self.baseline_seconds_to_healthy is None:
            return None
        extra = self.seconds_to_healthy - self.baseline_seconds_to_healthy
        return self.changelog_records / extra if extra > 0 else None


async def run_restore(
    bootstrap: str, target: WorkerTarget, empty_dir: Path, baseline: float | None
) -> Restore:
    """Start the (stopped) worker again on an empty data dir; time it to /health 200."""
    records = sum((await count_records(bootstrap, target.changelogs)).values())
    # The same group member with a new, empty volume (a pod whose volume was lost): the stopped
    # worker kept its static membership, and a new member would wait out its session.
    settings = target.settings
    target.settings = replace(settings, data_dir=empty_dir, instance_id=settings.group_instance_id)
    launched = time.monotonic()
    target.start()
    try:
        await target.wait_ready(timeout=600)
        seconds = time.monotonic() - launched
    finally:
        await asyncio.to_thread(target.stop)
    sessions, _ = _logical_bytes(_table_dirs(empty_dir, "sessions"))
    return Restore(
        changelog_records=records,
        seconds_to_healthy=seconds,
        baseline_seconds_to_healthy=baseline,
        sessions_restored=sessions,
    )
