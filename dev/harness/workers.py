"""Run `stream-app worker` as a child process, the way an operator would, from `Settings`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO

from dev.harness.kafka import security_from_env
from dev.harness.metrics import WorkerMetrics
from stream_app.settings import ProcessingGuarantee, Settings


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(
    bootstrap: str,
    prefix: str,
    data_dir: Path,
    web_port: int | None = None,
    partitions: int = 8,
    guarantee: str | ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE,
) -> Settings:
    """Settings whose app id and topic names all start with `prefix` (a run of its own)."""
    settings = Settings.from_env(
        {
            "STREAM_APP_BROKER": bootstrap,
            "STREAM_APP_ID": prefix,
            "STREAM_APP_INPUT_TOPIC": f"{prefix}-events",
            "STREAM_APP_OUTPUT_TOPIC": f"{prefix}-sessions",
            "STREAM_APP_TRANSITIONS_TOPIC": f"{prefix}-transitions",
            "STREAM_APP_DLQ_TOPIC": f"{prefix}-dlq",
            "STREAM_APP_STATS_TOPIC": f"{prefix}-stats",
            "STREAM_APP_PARTITIONS": str(partitions),
            "STREAM_APP_DATA_DIR": str(data_dir),
            "STREAM_APP_WEB_PORT": str(free_port() if web_port is None else web_port),
            "STREAM_APP_PROCESSING_GUARANTEE": ProcessingGuarantee(guarantee).value,
        }
    )
    # The caller's broker security (STREAM_APP_SECURITY_PROTOCOL, ...), as for every client.
    return replace(settings, security=security_from_env())


class WorkerProcess:
    """A running worker: start it, wait until healthy, stop it gently or kill it."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        log_level: str = "info",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.log_level = log_level
        #: Environment beyond the settings, e.g. STREAM_APP_SESSION_TIMEOUT for the drills.
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the worker's web server."""
        return f"http://127.0.0.1:{self.settings.web_port}"

    def env(self) -> dict[str, str]:
        """The process environment: the caller's, the settings, then the extra variables."""
        return {**os.environ, **self.settings.to_env(), **self.extra_env}

    def start(self, wait: bool = True, timeout: float = 90.0) -> WorkerProcess:
        """Spawn the worker; with `wait`, return once GET /health answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        command = [sys.executable, "-m", "stream_app", "worker", "-l", self.log_level]
        command += ["--web-port", str(self.settings.web_port), "--web-host", "127.0.0.1"]
        self.process = subprocess.Popen(
            command,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    @property
    def alive(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise, with the log's tail, if the worker was started and has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"worker {self.log_path.name} exited with {self.process.returncode}:\n"
                + self.tail()
            )

    def wait_healthy(self, timeout: float = 90.0) -> None:
        """Block until GET /health is 200; raise with the log tail if the worker dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.health() == 200:
                return
            time.sleep(0.25)
        raise TimeoutError(f"worker not healthy after {timeout:.0f}s:\n{self.tail()}")

    def health(self) -> int | None:
        """HTTP status of GET /health, or None when nothing answers."""
        try:
            return self.get("/health", timeout=2)[0]
        except OSError:
            return None

    def get(
        self, path: str, timeout: float = 10, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """GET a path on the worker's web server: (status, body)."""
        return self.request(path, timeout, headers)[:2]

    def request(
        self, path: str, timeout: float = 10, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """GET a path on the worker's web server: (status, body, response headers)."""
        request = urllib.request.Request(f"{self.url}{path}", headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), bytes(response.read()), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def metrics(self) -> WorkerMetrics | None:
        """GET /metrics, parsed; None when the worker does not answer 200."""
        try:
            status, body = self.get("/metrics")
        except OSError:
            return None
        return WorkerMetrics.parse(body.decode()) if status == 200 else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL: a clean shutdown when the worker allows it."""
        if self.process is None or self.process.poll() is not None:
            return self._close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self._close()

    def kill(self) -> int | None:
        """SIGKILL the worker's whole process group: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return self._close()

    def tail(self, lines: int = 40) -> str:
        """The last lines of the worker's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _close(self) -> int | None:
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if self.process is None else self.process.returncode
