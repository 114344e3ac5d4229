"""The worker's Kafka producers, as Faust builds them with the worker's settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaConnectionError, KafkaError, UnknownError

from stream_app.settings import Settings
from stream_app.worker.app import create_worker
from stream_app.worker.overrides.transactions import TRANSACTIONAL_RETRY_BACKOFF_MS

AIOKAFKA_DEFAULT_RETRY_BACKOFF_MS = 100


@pytest.mark.parametrize(
    ("guarantee", "transactional_id", "expected_ms"),
    [
        ("exactly_once", "app-sessions-0", TRANSACTIONAL_RETRY_BACKOFF_MS),
        ("at_least_once", None, AIOKAFKA_DEFAULT_RETRY_BACKOFF_MS),
    ],
)
def test_transactional_producers_retry_a_refused_request_sooner(
    tmp_path: Path, guarantee: str, transactional_id: str | None, expected_ms: int
) -> None:
    # After every commit the next transaction is refused until the commit's markers are
    # written; the retry's wait is added to the latency of the outputs that follow.
    async def retry_backoff_seconds() -> float:
        settings = Settings.from_env(
            {"STREAM_APP_DATA_DIR": str(tmp_path), "STREAM_APP_PROCESSING_GUARANTEE": guarantee}
        )
        app: Any = create_worker(settings, partitions=2).app
        producer = app.producer._new_producer(transactional_id=transactional_id)
        try:
            return float(producer._sender._retry_backoff)
        finally:
            await producer.stop()
            app.consumer._thread.thread_loop.close()

    assert asyncio.run(retry_backoff_seconds()) == expected_ms / 1000


def test_a_coordinator_lookup_that_loses_its_connection_is_asked_again(tmp_path: Path) -> None:
    # A broker shutting down closes the connection of a FindCoordinator request in flight:
    # aiokafka alone fails the producer for good (and the worker's commit with it).
    async def lookups() -> tuple[int, int]:
        settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)})
        app: Any = create_worker(settings, partitions=2).app
        producer = app.producer._new_producer(transactional_id="app-sessions-0")
        sender, client = producer._sender, producer.client
        asked = 0

        async def coordinator_lookup(coordinator_type: Any, key: str) -> int:
            nonlocal asked
            asked += 1
            if asked < 3:
                raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
            return 7

        async def ready(node_id: int, group: Any = None) -> bool:
            return True

        client.coordinator_lookup, client.ready = coordinator_lookup, ready
        try:
            node = await sender._find_coordinator(CoordinationType.TRANSACTION, "app-sessions-0")
            return node, asked
        finally:
            await producer.stop()
            app.consumer._thread.thread_loop.close()

    assert asyncio.run(lookups()) == (7, 3)


def test_other_coordinator_lookup_errors_still_fail(tmp_path: Path) -> None:
    async def lookup() -> None:
        settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)})
        app: Any = create_worker(settings, partitions=2).app
        producer = app.producer._new_producer(transactional_id="app-sessions-0")

        async def coordinator_lookup(coordinator_type: Any, key: str) -> int:
            raise UnknownError("broken")

        producer.client.coordinator_lookup = coordinator_lookup
        try:
            await producer._sender._find_coordinator(CoordinationType.TRANSACTION, "x")
        finally:
            await producer.stop()
            app.consumer._thread.thread_loop.close()

    with pytest.raises(KafkaError, match="broken"):
        asyncio.run(lookup())
