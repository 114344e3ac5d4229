"""Shared fixtures: a real Kafka broker for the integration tier, and unique names per test."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from dev import KAFKA_SCRIPT
from dev.harness.kafka import bootstrap_from_env

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _reachable(bootstrap: str) -> bool:
    result = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "probe"],
        env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap},
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port list of a reachable broker; starts the project's local broker when needed.

    Never skips: an integration test without a broker is a failure, in CI and on a laptop.
    """
    bootstrap = bootstrap_from_env()
    if _reachable(bootstrap):
        yield bootstrap
        return
    host = bootstrap.split(",")[0].rsplit(":", 1)[0]
    if host not in LOCAL_HOSTS:
        pytest.fail(f"STREAM_APP_BROKER={bootstrap} is not reachable", pytrace=False)
    started = subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], check=False)
    if started.returncode != 0:
        pytest.fail("the local Kafka broker did not start (see output above)", pytrace=False)
    try:
        yield "127.0.0.1:9092"
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop"], check=False)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Factory of names no other test (or earlier run) uses: topics, groups, app ids."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make
