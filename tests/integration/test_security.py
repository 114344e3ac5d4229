"""Secured Kafka: the worker and every tool over SASL_SSL (SCRAM) and SSL (client certificate).

A broker of the test's own, with the project's broker script, key material made by
deploy/kafka/tls.sh and a SCRAM user created when its storage is formatted. The shared
PLAINTEXT broker is not touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dev import KAFKA_SCRIPT
from dev.harness.kafka import delete_topics
from dev.harness.workers import WorkerProcess, settings_for
from tests.integration.helpers import lifecycle_lines, read_until, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TLS_SCRIPT = KAFKA_SCRIPT.parent / "tls.sh"
USER, PASSWORD = "stream-app", "scram-secret-4711"
KEY = "URNGV8294NV"


@dataclass(frozen=True)
class SecuredBroker:
    """Ports of the test broker's listeners and its key material."""

    plaintext: int
    sasl_ssl: int
    ssl: int
    tls: Path

    def sasl_ssl_env(self, password_file: Path) -> dict[str, str]:
        """Settings for SCRAM-SHA-512 over TLS, the password in a mounted-secret style file."""
        password_file.write_text(PASSWORD + "\n")
        return {
            "STREAM_APP_BROKER": f"127.0.0.1:{self.sasl_ssl}",
            "STREAM_APP_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAM_APP_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAM_APP_SASL_USERNAME": USER,
            "STREAM_APP_SASL_PASSWORD_FILE": str(password_file),
            "STREAM_APP_SSL_CA_FILE": str(self.tls / "ca.pem"),
        }

    def ssl_env(self) -> dict[str, str]:
        """Settings for TLS with a client certificate."""
        return {
            "STREAM_APP_BROKER": f"127.0.0.1:{self.ssl}",
            "STREAM_APP_SECURITY_PROTOCOL": "SSL",
            "STREAM_APP_SSL_CA_FILE": str(self.tls / "ca.pem"),
            "STREAM_APP_SSL_CERT_FILE": str(self.tls / "client.pem"),
            "STREAM_APP_SSL_KEY_FILE": str(self.tls / "client.key"),
        }


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """A broker with PLAINTEXT, SASL_SSL and SSL listeners; stopped after the module."""
    root = tmp_path_factory.mktemp("secured-broker")
    subprocess.run(["bash", str(TLS_SCRIPT), str(root / "tls")], check=True)
    plaintext, controller, sasl_ssl, ssl = _free_ports(4)
    env = {
        **os.environ,
        "KAFKA_PORT": str(plaintext),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DATA_DIR": str(root / "kafka"),
        "KAFKA_TLS_DIR": str(root / "tls"),
        "KAFKA_SASL_SSL_PORT": str(sasl_ssl),
        "KAFKA_SSL_PORT": str(ssl),
        "KAFKA_SCRAM_USER": USER,
        "KAFKA_SCRAM_PASSWORD": PASSWORD,
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx384m",
    }
    started = subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], env=env, check=False)
    try:
        assert started.returncode == 0, "the secured test broker did not start (see output)"
        yield SecuredBroker(plaintext, sasl_ssl, ssl, root / "tls")
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop"], env=env, check=False)


async def _lifecycle_through(
    env: dict[str, str], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tools read the same STREAM_APP_* security settings as the worker.
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    bootstrap = env["STREAM_APP_BROKER"]
    settings = settings_for(bootstrap, name, tmp_path / "data", partitions=2)
    assert settings.security.protocol.value == env["STREAM_APP_SECURITY_PROTOCOL"]
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start(timeout=120)
        await send(bootstrap, settings.input_topic, [(KEY, line) for line in lifecycle_lines()])
        snapshots = await read_until(
            bootstrap, settings.output_topic, lambda rs: any(v["updateCount"] == 5 for _, v in rs)
        )
        transitions = await read_until(
            bootstrap, settings.transitions_topic, lambda rs: len(rs) >= 4
        )
        dead = await read_until(bootstrap, settings.dlq_topic, lambda rs: len(rs) >= 1)
    finally:
        worker.stop()
    final = snapshots[-1][1]
    assert (final["state"], final["total"], final["firstSession"]) == ("cancelled", 74.99, True)
    assert [v["to"] for _, v in transitions] == [
        "open", "closed", "partially_returned", "cancelled",
    ]  # fmt: skip
    assert [v["error"]["code"] for _, v in dead] == ["session_locked"]
    log = worker.log_path.read_text(errors="replace")
    assert PASSWORD not in log
    await delete_topics(bootstrap, f"{name}-")


async def test_lifecycle_over_sasl_ssl_with_scram(
    secured_broker: SecuredBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = secured_broker.sasl_ssl_env(tmp_path / "password")
    await _lifecycle_through(env, f"sasl-{os.getpid()}-{time.time_ns()}", tmp_path, monkeypatch)


async def test_lifecycle_over_ssl_with_a_client_certificate(
    secured_broker: SecuredBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = secured_broker.ssl_env()
    await _lifecycle_through(env, f"ssl-{os.getpid()}-{time.time_ns()}", tmp_path, monkeypatch)


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "stream_app", *command],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


async def test_check_reports_brokers_and_transactions_over_each_listener(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    for env in (secured_broker.sasl_ssl_env(tmp_path / "password"), secured_broker.ssl_env()):
        code, out, _ = _run(["check"], {**env, "STREAM_APP_ID": f"check-{time.time_ns()}"})

        assert code == 0, out
        assert f"brokers: 1@127.0.0.1:{env['STREAM_APP_BROKER'].rsplit(':', 1)[1]}" in out
        assert "transactions: ok" in out
        assert PASSWORD not in out


async def test_a_wrong_password_fails_fast_and_says_why(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    wrong = "not-the-password-123"
    env = secured_broker.sasl_ssl_env(tmp_path / "password")
    (tmp_path / "password").write_text(wrong)
    env["STREAM_APP_DATA_DIR"] = str(tmp_path / "data")

    for command in (["check"], ["worker", "-l", "info"]):
        code, out, seconds = _run(command, env)

        assert code != 0, out
        assert "SaslAuthenticationFailed" in out, out
        assert "invalid credentials" in out, out
        assert wrong not in out
        assert seconds < 60, f"{command} took {seconds:.0f}s to fail"


async def test_a_plaintext_client_gets_nothing_from_the_ssl_listener(
    secured_broker: SecuredBroker,
) -> None:
    env = {"STREAM_APP_BROKER": f"127.0.0.1:{secured_broker.ssl}", "STREAM_APP_ID": "plain"}

    code, out, seconds = _run(["check"], env)

    assert code == 1, out
    assert "FAILED to connect" in out
    assert seconds < 60
