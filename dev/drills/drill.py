"""What every drill needs: its own topics and workers, a paced producer, and the outputs.

A `Drill` owns one app id / topic prefix (unique per run, so drills can share a broker with
other people's tests), a directory for worker logs and data, the worker processes it started
(stopped at the end), and readers tailing the three output topics with isolation level
read_committed from the start, so that a drill can wait until the outputs match the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dev.drills.expect import Expectation, expect
from dev.drills.verify import Findings, check_outputs
from dev.harness.kafka import (
    Record,
    client_security,
    delete_topics,
    raw_key,
    read_all,
    reader,
    topic_partitions,
)
from dev.harness.replay import InputRecord
from dev.harness.settle import WaitTimeout, wait_until
from dev.harness.workers import WorkerProcess, free_port, settings_for
from stream_app.domain import decode_customer_session, decode_key
from stream_app.settings import Settings
from stream_app.worker.topics import ensure_topics

log = logging.getLogger(__name__)


@dataclass
class DrillOptions:
    """Where and how drills run."""

    bootstrap: str
    root: Path
    seed: int = 1
    keep: bool = False
    #: Extra settings for every worker (e.g. STREAM_APP_SESSION_TIMEOUT).
    worker_env: dict[str, str] = field(default_factory=dict)
    log_level: str = "info"


class TopicTail:
    """Reads a topic from the beginning (read_committed) into `records`, in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[Any] = []
        self.last_record_at = time.monotonic()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Sequence[Any]], None]] = []

    def on_records(self, listener: Callable[[Sequence[Any]], None]) -> None:
        """Call `listener(records)` with every batch read."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Assign every partition, seek to the beginning and start reading."""
        consumer = self._consumer = reader(self.bootstrap, request_timeout_ms=120_000)
        await consumer.start()
        tps = await topic_partitions(consumer, [self.topic])
        if not tps:
            raise RuntimeError(f"topic {self.topic} has no partitions")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(consumer), name=f"tail-{self.topic}")

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be restarting: keep trying
                log.debug("tail %s: %r", self.topic, exc)
                await asyncio.sleep(0.5)
                continue
            for messages in batch.values():
                self.records.extend(messages)
                for listener in self._listeners:
                    listener(messages)
            if batch:
                self.last_record_at = time.monotonic()

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class Outputs:
    """Tails of the snapshot, transition and dead-letter topics, with progress counters."""

    def __init__(self, bootstrap: str, settings: Settings) -> None:
        self.snapshots = TopicTail(bootstrap, settings.output_topic)
        self.transitions = TopicTail(bootstrap, settings.transitions_topic)
        self.dead_letters = TopicTail(bootstrap, settings.dlq_topic)
        self.latest_count: dict[str, int] = {}
        #: The last snapshot read per session: what GET /sessions/{id} must answer.
        self.last_snapshot: dict[str, bytes] = {}
        self.snapshots.on_records(self._track)

    @property
    def tails(self) -> tuple[TopicTail, TopicTail, TopicTail]:
        """The three tails."""
        return (self.snapshots, self.transitions, self.dead_letters)

    def _track(self, records: Sequence[Any]) -> None:
        latest = self.latest_count
        for record in records:
            count = decode_customer_session(record.value).update_count
            key = decode_key(record.key) or ""
            if count > latest.get(key, 0):
                latest[key] = count
            self.last_snapshot[key] = record.value

    @property
    def last_record_at(self) -> float:
        """When any output record was last read (monotonic clock)."""
        return max(tail.last_record_at for tail in self.tails)

    def matches(self, expectation: Expectation) -> bool:
        """Whether every expected final snapshot, transition and dead letter has been read."""
        if len(self.transitions.records) < expectation.transitions:
            return False
        if len(self.dead_letters.records) < len(expectation.rejections):
            return False
        latest = self.latest_count
        return all(
            latest.get(integration_id, 0) >= history.final_count
            for integration_id, history in expectation.sessions.items()
        )

    def behind(self, expectation: Expectation) -> dict[str, int]:
        """How far the outputs are from the replay (for a drill that did not converge)."""
        latest = self.latest_count
        return {
            "sessions_behind": sum(
                1
                for integration_id, history in expectation.sessions.items()
                if latest.get(integration_id, 0) < history.final_count
            ),
            "transitions_missing": expectation.transitions - len(self.transitions.records),
            "dead_letters_missing": len(expectation.rejections) - len(self.dead_letters.records),
        }

    def check(self, expectation: Expectation) -> Findings:
        """Run every check of verify.py on what has been read."""
        return check_outputs(
            expectation,
            self.snapshots.records,
            self.transitions.records,
            self.dead_letters.records,
        )


class PacedProducer:
    """Sends records in order at about `rate` records/s, in the background.

    The producer is idempotent and waits long for the broker, so that it rides through a broker
    restart; whatever it wrote is read back from the topic afterwards, so the replay sees the
    input as it is, whatever happened to the producer.
    """

    def __init__(self, bootstrap: str, topic: str, records: Sequence[Record], rate: float) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records = records
        self.rate = rate
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> PacedProducer:
        """Start producing in the background."""
        self.task = asyncio.create_task(self._run(), name=f"produce-{self.topic}")
        return self

    async def wait(self) -> None:
        """Wait until every record is acknowledged by the broker."""
        assert self.task is not None
        await self.task

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=180_000,
            **client_security(),
        )
        await producer.start()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            chunk = max(1, int(self.rate / 20))
            pending: list[asyncio.Future[Any]] = []
            for index, (key, value) in enumerate(self.records, start=1):
                pending.append(await producer.send(self.topic, value, key=raw_key(key)))
                if index % chunk == 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    self.sent = index
                    ahead = started + index / self.rate - loop.time()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            await asyncio.gather(*pending)
            self.sent = len(self.records)
        finally:
            await producer.stop()


class Drill:
    """One drill's topics, directory and workers."""

    def __init__(
        self,
        options: DrillOptions,
        name: str,
        partitions: int = 4,
        guarantee: str = "exactly_once",
    ) -> None:
        self.options = options
        self.name = name
        self.prefix = f"drill-{name}-{uuid.uuid4().hex[:8]}"
        self.dir = options.root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        # Every worker gets a data directory and a web port of its own, see worker().
        self.settings = settings_for(
            options.bootstrap, self.prefix, self.dir / "data-0", None, partitions, guarantee
        )
        #: Environment of every worker beyond its settings (Faust's own variables).
        self.worker_env = dict(options.worker_env)
        self.workers: list[WorkerProcess] = []
        self._ended: set[int] = set()  # id() of workers the drill stopped or killed itself
        self.outputs = Outputs(options.bootstrap, self.settings)
        self.rng = random.Random(f"{options.seed}-{name}")

    @property
    def bootstrap(self) -> str:
        """host:port of the broker."""
        return self.options.bootstrap

    async def __aenter__(self) -> Drill:
        # The worker would create its topics on start; creating them first lets the output
        # readers start before any worker, whatever order the drill starts things in.
        await ensure_topics(self.settings)
        for tail in self.outputs.tails:
            await tail.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for worker in self.workers:
            await asyncio.to_thread(worker.stop)
        for tail in self.outputs.tails:
            await tail.stop()
        if not self.options.keep:
            await delete_topics(self.bootstrap, f"{self.prefix}-")
            if exc_info[0] is None:
                for path in self.dir.glob("data-*"):
                    shutil.rmtree(path, ignore_errors=True)

    def worker(self, index: int = 0, **overrides: Any) -> WorkerProcess:
        """A worker process (not started) with its own data directory and web port."""
        settings = replace(
            self.settings,
            data_dir=self.dir / f"data-{index}",
            web_port=free_port(),
            **overrides,
        )
        worker = WorkerProcess(
            settings, self.dir / f"worker-{index}.log", self.options.log_level, self.worker_env
        )
        self.workers.append(worker)
        return worker

    async def start(self, worker: WorkerProcess, timeout: float = 180.0) -> float:
        """Start a worker and wait until it is healthy; return how long that took."""
        started = time.monotonic()
        self._ended.discard(id(worker))
        await asyncio.to_thread(worker.start, True, timeout)
        return time.monotonic() - started

    async def spawn(self, worker: WorkerProcess) -> None:
        """Start a worker without waiting for it to be healthy."""
        self._ended.discard(id(worker))
        await asyncio.to_thread(worker.start, False)

    async def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL a worker (its whole process group)."""
        self._ended.add(id(worker))
        await asyncio.to_thread(worker.kill)

    async def stop(self, worker: WorkerProcess) -> None:
        """Stop a worker cleanly (SIGTERM)."""
        self._ended.add(id(worker))
        await asyncio.to_thread(worker.stop, 60.0)

    def producer(self, records: Sequence[Record], rate: float) -> PacedProducer:
        """A paced producer to the drill's input topic (not started)."""
        return PacedProducer(self.bootstrap, self.settings.input_topic, records, rate)

    async def read_input(self) -> list[InputRecord]:
        """Every record of the input topic, with its partition and offset."""
        records = await read_all(self.bootstrap, self.settings.input_topic)
        return [InputRecord.from_consumer_record(record) for record in records]

    async def expectation(self) -> Expectation:
        """The replay of the input topic as it is now."""
        return expect(await self.read_input())

    async def wait_outputs(
        self,
        expectation: Expectation,
        timeout: float = 600.0,
        stall: float = 120.0,
        settle: float = 3.0,
    ) -> float | None:
        """Wait until the outputs match the replay, then `settle` seconds more.

        Returns the seconds waited, or None when the outputs stopped moving for `stall` seconds
        or `timeout` passed without matching (the checks then say what is missing).
        """
        try:
            waited = await wait_until(
                lambda: self.outputs.matches(expectation),
                timeout=timeout,
                what="the outputs to match the replay",
                progress=lambda: self.outputs.last_record_at,
                stall=stall,
                check=self.check_workers_alive,
            )
        except WaitTimeout:
            return None
        await asyncio.sleep(settle)
        return waited

    def check_workers_alive(self) -> None:
        """Raise if a worker the drill did not kill has exited."""
        for worker in self.workers:
            if id(worker) not in self._ended:
                worker.check_alive()
