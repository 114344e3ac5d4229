"""Integration-tier fixtures: topics, producers and consumers on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_app.tools.worker_process import WorkerConfig, WorkerProcess

Record = tuple[bytes | None, bytes]

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    """The broker every integration test talks to."""
    return kafka_bootstrap


@pytest_asyncio.fixture
async def create_topic(bootstrap: str) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Factory: create a topic with n partitions on the real broker; deleted after the test."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    created: list[str] = []

    async def make(name: str, partitions: int = 1, **configs: str) -> str:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or None)])
        created.append(name)
        return name

    yield make
    if created:
        await admin.delete_topics(created)
    await admin.close()


@pytest_asyncio.fixture
async def produce(bootstrap: str) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Factory: send (key, value) records to a topic, in order, and wait for the acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()

    async def send(topic: str, records: list[Record], partition: int | None = None) -> None:
        for key, value in records:
            await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()

    yield send
    await producer.stop()


@pytest.fixture
def consume(
    bootstrap: str, unique_name: Callable[[str], str]
) -> Callable[..., Awaitable[list[Any]]]:
    """Factory: read records of a topic from the start (read_committed) until a count or timeout."""

    async def read(
        topic: str, count: int | None = None, timeout: float = 30.0, idle: float | None = None
    ) -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=unique_name("reader"),
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_seen = loop.time()
        try:
            while loop.time() < deadline:
                if count is not None and len(records) >= count:
                    break
                if idle is not None and records and loop.time() - last_seen > idle:
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    records.extend(messages)
                    last_seen = loop.time()
        finally:
            await consumer.stop()
        return records

    return read


@pytest.fixture
def start_worker(
    bootstrap: str,
    unique_name: Callable[[str], str],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start `stream-app worker` processes on fresh topics; all stopped after the test.

    Pass `config=` to start another worker on the same topics/group (second worker, restart),
    or `prefix=` for a worker of its own on other fresh topics.
    """
    started: list[WorkerProcess] = []

    def start(
        config: WorkerConfig | None = None,
        *,
        data_dir: Path | None = None,
        wait: bool = True,
        prefix: str = "sa",
        **overrides: Any,
    ) -> WorkerProcess:
        if config is None:
            config = WorkerConfig.for_prefix(
                bootstrap,
                unique_name(prefix),
                tmp_path / f"worker-{len(started)}",
                free_port(),
                **overrides,
            )
        else:
            config = replace(
                config,
                web_port=free_port(),
                data_dir=data_dir or tmp_path / f"worker-{len(started)}",
                **overrides,
            )
        log = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess(config, log)
        started.append(worker)
        worker.start(wait=wait)
        return worker

    yield start
    for worker in started:
        worker.stop()
