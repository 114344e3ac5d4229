"""Shared fixtures: a real Kafka broker for the integration tier, and unique names per test."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _bootstrap(broker_url: str) -> str:
    return ",".join(entry.split("://", 1)[-1] for entry in broker_url.split(","))


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
    bootstrap = _bootstrap(os.environ.get("STREAM_APP_BROKER", "127.0.0.1:9092"))
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


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Factory of TCP ports that were free a moment ago on 127.0.0.1."""

    def make() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    return make
