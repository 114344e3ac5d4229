"""Integration-tier fixtures: topics and worker processes on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dev.harness.kafka import client_security
from dev.harness.workers import WorkerProcess, free_port, settings_for
from stream_app.settings import ProcessingGuarantee, Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(kafka_bootstrap: str) -> str:
    """The broker every integration test talks to."""
    return kafka_bootstrap


@pytest_asyncio.fixture
async def create_topic(bootstrap: str) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Factory: create a topic with n partitions on the real broker; deleted after the test."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
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


@pytest.fixture
def start_worker(
    bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start `stream-app worker` processes on fresh topics; all stopped after the test.

    Pass `settings=` to start another worker on the same topics/group (second worker, restart),
    or `prefix=` for a worker of its own on other fresh topics.
    """
    started: list[WorkerProcess] = []

    def start(
        settings: Settings | None = None,
        *,
        data_dir: Path | None = None,
        wait: bool = True,
        prefix: str = "sa",
        partitions: int = 8,
        guarantee: ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE,
        overrides: Mapping[str, Any] | None = None,
    ) -> WorkerProcess:
        own_dir = data_dir or tmp_path / f"worker-{len(started)}"
        if settings is None:
            settings = settings_for(
                bootstrap, unique_name(prefix), own_dir, partitions=partitions, guarantee=guarantee
            )
        else:
            settings = replace(settings, web_port=free_port(), data_dir=own_dir)
        if overrides:
            settings = replace(settings, **overrides)
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        worker.start(wait=wait)
        return worker

    yield start
    for worker in started:
        worker.stop()
