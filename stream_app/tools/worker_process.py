"""Run `stream-app worker` as a child process, the way an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Environment for one worker process (every STREAM_APP_* setting it reads)."""

    broker: str
    app_id: str
    input_topic: str
    output_topic: str
    transitions_topic: str
    dlq_topic: str
    data_dir: Path
    web_port: int
    partitions: int = 8
    processing_guarantee: str = "exactly_once"
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The process environment: ours on top of the caller's."""
        return {
            **os.environ,
            "STREAM_APP_BROKER": self.broker,
            "STREAM_APP_ID": self.app_id,
            "STREAM_APP_INPUT_TOPIC": self.input_topic,
            "STREAM_APP_OUTPUT_TOPIC": self.output_topic,
            "STREAM_APP_TRANSITIONS_TOPIC": self.transitions_topic,
            "STREAM_APP_DLQ_TOPIC": self.dlq_topic,
            "STREAM_APP_PARTITIONS": str(self.partitions),
            "STREAM_APP_DATA_DIR": str(self.data_dir),
            "STREAM_APP_WEB_PORT": str(self.web_port),
            "STREAM_APP_PROCESSING_GUARANTEE": self.processing_guarantee,
            **self.extra_env,
        }

    @classmethod
    def for_prefix(
        cls, broker: str, prefix: str, data_dir: Path, web_port: int, **kwargs: object
    ) -> WorkerConfig:
        """A config whose app id and topic names all start with `prefix`."""
        return cls(
            broker=broker,
            app_id=prefix,
            input_topic=f"{prefix}-events",
            output_topic=f"{prefix}-sessions",
            transitions_topic=f"{prefix}-transitions",
            dlq_topic=f"{prefix}-dlq",
            data_dir=data_dir,
            web_port=web_port,
            **kwargs,  # type: ignore[arg-type]
        )


class WorkerProcess:
    """A running worker: start it, wait until healthy, stop it gently or kill it."""

    def __init__(self, config: WorkerConfig, log_path: Path, log_level: str = "info") -> None:
        self.config = config
        self.log_path = log_path
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the worker's web server."""
        return f"http://127.0.0.1:{self.config.web_port}"

    def start(self, wait: bool = True, timeout: float = 90.0) -> WorkerProcess:
        """Spawn the worker; with `wait`, return once GET /health answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        command = [sys.executable, "-m", "stream_app", "worker", "-l", self.log_level]
        command += ["--web-port", str(self.config.web_port), "--web-host", "127.0.0.1"]
        self.process = subprocess.Popen(
            command,
            env=self.config.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 90.0) -> None:
        """Block until GET /health is 200; raise with the log tail if the worker dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            if self.health() == 200:
                return
            time.sleep(0.25)
        raise TimeoutError(f"worker not healthy after {timeout:.0f}s:\n{self.tail()}")

    def health(self) -> int | None:
        """HTTP status of GET /health, or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path on the worker's web server: (status, body)."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

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
