"""A rolling restart under a steady stream: which partitions moved, and the longest pause.

    python -m dev.drills.rolling [--workers 2] [--partitions 8] [--rate 500] [--settle 10]

Starts the workers of one group (static members, fixed web ports and data directories), sends
events at a steady rate, then restarts each worker in turn as a rolling upgrade does: SIGTERM,
wait for the exit, start it again under the same instance id, wait until it is ready. Meanwhile
it polls every worker's `GET /partitions`; a partition moved when it shows up as active on a
worker other than its owner at the start. The pause is measured on the output: each event
carries the wall-clock time it was sent, and each snapshot's timestamp says when the worker
wrote it. The workers that stay up count the rebalances they see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dev.harness.kafka import bootstrap_from_env, client_security, delete_topics
from dev.harness.settle import wait_until
from dev.harness.workers import WorkerProcess, free_port, settings_for
from stream_app.settings import ProcessingGuarantee


@dataclass
class RollingResult:
    """What a rolling restart did to the group and to the output."""

    workers: int
    partitions: int
    events: int
    snapshots: int
    #: (partition, from instance, to instance) for every partition seen active elsewhere.
    moves: list[tuple[int, str, str]] = field(default_factory=list)
    #: Seconds each worker took from SIGTERM to ready again.
    restarts: list[float] = field(default_factory=list)
    #: Rebalances the workers that stayed up saw while each one restarted.
    rebalances: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def longest_pause_ms(self) -> float:
        """The largest send-to-output delay of any event: the longest it waited."""
        return max(self.latencies_ms, default=0.0)

    def summary(self) -> dict[str, object]:
        """The figures, for the log and docs/operations.md."""
        latencies = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

        return {
            "workers": self.workers,
            "partitions": self.partitions,
            "events": self.events,
            "snapshots": self.snapshots,
            "partitions_moved": len({move[0] for move in self.moves}),
            "moves": self.moves,
            "restart_to_ready_s": [round(r, 1) for r in self.restarts],
            "rebalances_seen_by_the_others": self.rebalances,
            "latency_ms_p50": pct(0.5) if latencies else None,
            "latency_ms_p99": pct(0.99) if latencies else None,
            "longest_pause_ms": round(self.longest_pause_ms, 1),
            "mean_latency_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        }


def _active(worker: WorkerProcess, topic: str) -> set[int] | None:
    try:
        status, body = worker.get("/partitions", timeout=2)
    except OSError:
        return None
    if status != 200:
        return None
    return set(json.loads(body)["active"].get(topic, []))


def _rebalances(workers: list[WorkerProcess]) -> int:
    total = 0
    for worker in workers:
        metrics = worker.metrics()
        if metrics is None:
            raise RuntimeError(f"{worker.log_path.name} does not answer GET /metrics")
        total += int(metrics.value("stream_app_rebalances_total"))
    return total


async def measure_rolling_restart(
    bootstrap: str,
    workdir: Path,
    *,
    workers: int = 2,
    partitions: int = 8,
    rate: float = 500.0,
    settle: float = 10.0,
    guarantee: ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE,
    leave_group_on_stop: bool = False,
) -> RollingResult:
    """Run the rolling restart; the run's topics are deleted afterwards."""
    prefix = f"rolling-{int(time.time())}"
    base = settings_for(bootstrap, prefix, workdir / "unused", partitions=partitions,
                        guarantee=guarantee)  # fmt: skip
    base = replace(base, leave_group_on_stop=leave_group_on_stop)
    group = [
        WorkerProcess(
            replace(base, data_dir=workdir / f"w{n}", web_port=free_port(), instance_id=f"w{n}"),
            workdir / f"w{n}.log",
        )
        for n in range(workers)
    ]
    topic = base.input_topic
    result = RollingResult(workers, partitions, 0, 0)
    try:
        for worker in group:
            worker.start(wait=False)
        owners = await _settled_owners(group, topic, partitions)
        stop = asyncio.Event()
        sent_at: dict[str, float] = {}
        producing = asyncio.create_task(_produce(bootstrap, topic, rate, stop, sent_at))
        watching = asyncio.create_task(_watch(group, topic, owners, result, stop))
        await asyncio.sleep(settle)
        for n, worker in enumerate(group):
            others = [other for other in group if other is not worker]
            rebalances_before = _rebalances(others)
            began = time.monotonic()
            code = await asyncio.to_thread(worker.stop, 60.0)
            if code != 0:
                raise RuntimeError(f"{worker.log_path.name} stopped with {code}:\n{worker.tail()}")
            group[n] = WorkerProcess(worker.settings, worker.log_path)
            await asyncio.to_thread(group[n].start, True, 120.0)
            own = {p for p, o in owners.items() if o == n}
            restarted = group[n]
            await wait_until(
                lambda: _active(restarted, topic) == own,  # noqa: B023 (awaited here)
                timeout=120,
                interval=0.1,
                what=f"{restarted.log_path.name} consuming its partitions again",
            )
            result.restarts.append(time.monotonic() - began)
            await asyncio.sleep(settle)
            result.rebalances.append(_rebalances(others) - rebalances_before)
        stop.set()
        await producing
        await watching
        result.events = len(sent_at)
        await _read_latencies(bootstrap, base.output_topic, sent_at, result)
    finally:
        for worker in group:
            worker.stop(timeout=60)
        await delete_topics(bootstrap, prefix)
    return result


async def _settled_owners(
    group: list[WorkerProcess], topic: str, partitions: int
) -> dict[int, int]:
    """Wait until every partition is active on exactly one worker; partition -> worker index."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = [_active(worker, topic) or set() for worker in group]
        owners = {p: n for n, active in enumerate(seen) for p in active}
        every_one_once = sum(len(active) for active in seen) == partitions
        if all(seen) and sorted(owners) == list(range(partitions)) and every_one_once:
            return owners
        await asyncio.sleep(0.5)
    raise TimeoutError("the group did not settle")


async def _produce(
    bootstrap: str, topic: str, rate: float, stop: asyncio.Event, sent_at: dict[str, float]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, **client_security())
    await producer.start()
    n, started = 0, time.monotonic()
    try:
        while not stop.is_set():
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.time()
            key = f"r-{n}"
            value = {
                "eventId": f"e-{n}", "type": "update", "integrationId": key, "applicationId": 1,
                "occurredAt": datetime.fromtimestamp(now, UTC).isoformat(), "session": {},
            }  # fmt: skip
            await producer.send(topic, json.dumps(value).encode(), key=key.encode())
            sent_at[key] = now
            n += 1
        await producer.flush()
    finally:
        await producer.stop()


async def _watch(
    group: list[WorkerProcess],
    topic: str,
    owners: dict[int, int],
    result: RollingResult,
    stop: asyncio.Event,
) -> None:
    names = [worker.settings.instance_id or "" for worker in group]
    while not stop.is_set():
        for n, worker in enumerate(group):
            for p in await asyncio.to_thread(_active, worker, topic) or ():
                move = (p, names[owners[p]], names[n])
                if owners[p] != n and move not in result.moves:
                    result.moves.append(move)
        await asyncio.sleep(0.2)


async def _read_latencies(
    bootstrap: str, topic: str, sent_at: dict[str, float], result: RollingResult
) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        isolation_level="read_committed", enable_auto_commit=False, **client_security(),
    )  # fmt: skip
    await consumer.start()
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    try:
        while len(seen) < len(sent_at) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    key = record.key.decode()
                    if key in sent_at and key not in seen:
                        seen.add(key)
                        result.latencies_ms.append(record.timestamp - sent_at[key] * 1000)
    finally:
        await consumer.stop()
    result.snapshots = len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument(
        "--guarantee", default="exactly_once", choices=["exactly_once", "at_least_once"]
    )
    parser.add_argument(
        "--leave-group-on-stop", action="store_true", help="STREAM_APP_LEAVE_GROUP_ON_STOP=true"
    )
    args = parser.parse_args()
    workdir = Path("drill-results") / f"rolling-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(
        measure_rolling_restart(
            bootstrap_from_env(), workdir, workers=args.workers, partitions=args.partitions,
            rate=args.rate, settle=args.settle, guarantee=ProcessingGuarantee(args.guarantee),
            leave_group_on_stop=args.leave_group_on_stop,
        )
    )  # fmt: skip
    print(json.dumps(result.summary(), indent=2))
    (workdir / "result.json").write_text(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
