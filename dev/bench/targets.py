"""The processes under test: the worker (either guarantee), the raw aiokafka loop, and
reference jobs run the same way as the raw loop (dev/bench/quix_job.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from dev import ROOT
from dev.harness.kafka import create_topic
from dev.harness.metrics import WorkerMetrics
from dev.harness.workers import WorkerProcess
from stream_app.settings import Settings
from stream_app.worker.topics import ensure_topics


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target(Protocol):
    """A process that consumes `input_topic` in consumer group `group` and writes `outputs`."""

    name: str
    group: str
    input_topic: str
    #: Every topic the group consumes; the run is done when all are committed to their end.
    consumed: list[str]
    #: Every topic it writes; the first record's timestamp marks the start of processing.
    outputs: list[str]
    #: The topic the latency benchmark watches.
    visible: str
    #: Whether its outputs carry their input record's timestamp instead of their own.
    keeps_input_timestamps: bool

    async def prepare(self) -> None:
        """Create the topics the process needs before it starts."""

    def start(self) -> None:
        """Spawn the process (returns at once)."""

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Return once the process consumes (has its partitions / answers /health)."""

    def ready(self) -> bool:
        """Whether the process consumes now."""

    def pid(self) -> int:
        """The process id (the process that does the work)."""

    def alive(self) -> bool:
        """Whether the process still runs."""

    def metrics(self) -> WorkerMetrics | None:
        """The worker's /metrics (None for the raw loop)."""

    def stop(self) -> None:
        """SIGTERM and wait."""

    def tail(self) -> str:
        """The end of the process's log."""


@dataclass
class WorkerTarget:
    """`stream-app worker` with one processing guarantee, on its own app id and topics."""

    name: str
    settings: Settings
    log_path: Path
    group: str = ""
    input_topic: str = ""
    visible: str = ""
    keeps_input_timestamps: bool = False

    def __post_init__(self) -> None:
        settings = self.settings
        self.group = settings.app_id
        self.input_topic = settings.input_topic
        self.visible = settings.output_topic
        self.consumed = [settings.input_topic, settings.claims_topic, settings.verdicts_topic]
        self.consumed.append(settings.rekeyed_topic)
        self.outputs = [
            settings.output_topic,
            settings.transitions_topic,
            settings.dlq_topic,
            settings.claims_topic,
        ]
        self.process = WorkerProcess(self.settings, self.log_path, log_level="info")

    @property
    def changelogs(self) -> list[str]:
        """The worker's table changelog topics (Faust names them {app id}-{table}-changelog)."""
        return [f"{self.group}-{table}-changelog" for table in ("sessions", "profiles", "expiries")]

    async def prepare(self) -> None:
        """Create the worker's topics as it would on start, so they can be polled from t=0."""
        await ensure_topics(self.settings)

    def start(self) -> None:
        """Spawn the worker."""
        self.process = WorkerProcess(self.settings, self.log_path, log_level="info")
        self.process.start(wait=False)

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for GET /health 200."""
        await asyncio.to_thread(self.process.wait_healthy, timeout)

    def ready(self) -> bool:
        """GET /health is 200."""
        return self.process.health() == 200

    def pid(self) -> int:
        """The worker's pid (`python -m stream_app worker` runs Faust in that process)."""
        assert self.process.process is not None
        return self.process.process.pid

    def alive(self) -> bool:
        """Whether the worker still runs."""
        return self.process.alive

    def metrics(self) -> WorkerMetrics | None:
        """GET /metrics, parsed."""
        return self.process.metrics()

    def stop(self) -> None:
        """SIGTERM, wait for a clean shutdown (SIGKILL after 60 s)."""
        self.process.stop(timeout=60)

    def tail(self) -> str:
        """The last lines of the worker's log."""
        return self.process.tail()


@dataclass
class RawTarget:
    """The raw aiokafka loop (dev.bench.raw) in its own process, or another job that takes the
    same arguments and prints `ready` the same way (`command`: e.g. dev/bench/quix_job.py)."""

    name: str
    bootstrap: str
    input_topic: str
    output_topic: str
    group: str
    log_path: Path
    #: The job's command before --bootstrap/--input/--output/--group (default: the raw loop).
    command: list[str] | None = None
    #: Whether its outputs carry their input record's timestamp instead of their own.
    keeps_input_timestamps: bool = False

    def __post_init__(self) -> None:
        self.consumed = [self.input_topic]
        self.outputs = [self.output_topic]
        self.visible = self.output_topic
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    async def prepare(self) -> None:
        """Create the output topic with the input's partition count."""
        from dev.bench.probe import Probe

        async with Probe(self.bootstrap) as probe:
            partitions = len(await probe.partitions(self.input_topic))
        await create_topic(self.bootstrap, self.output_topic, partitions)

    def start(self) -> None:
        """Spawn `python -m dev.bench.raw`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        command = [*(self.command or [sys.executable, "-m", "dev.bench.raw"])]
        command += ["--bootstrap", self.bootstrap]
        command += ["--input", self.input_topic, "--output", self.output_topic]
        command += ["--group", self.group]
        # dev/ is not installed: the child runs from the repository root, like `make bench`.
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready(self) -> bool:
        """It printed `ready` (it has its partitions)."""
        try:
            return b"ready" in self.log_path.read_bytes()
        except OSError:
            return False

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for the `ready` line."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.alive():
                raise RuntimeError(f"raw loop exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw loop not ready after {timeout:.0f}s:\n{self.tail()}")
            await asyncio.sleep(0.1)

    def pid(self) -> int:
        """The raw loop's pid."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the raw loop still runs."""
        return self.process is not None and self.process.poll() is None

    def metrics(self) -> WorkerMetrics | None:
        """The raw loop has no /metrics."""
        return None

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self) -> str:
        """The last lines of the raw loop's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""
