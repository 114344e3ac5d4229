"""The worker's Kafka producers, as Faust builds them with the worker's settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

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
