"""The failure drills. Each returns a DrillResult: passed or not, figures, problems.

Every drill runs on its own topics and consumer group (see harness.Drill) and checks the
outputs with verify.py against a replay of its input topic through the domain core.
A drill never retries or relaxes a check: a problem is reported as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import statistics
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dev import KAFKA_SCRIPT
from dev.drills.drill import Drill, DrillOptions
from dev.drills.expect import Expectation
from dev.drills.verify import Findings
from dev.harness.kafka import count_records
from dev.harness.workers import WorkerProcess
from dev.harness.workload import HOSTILE_KINDS, generate_workload, hostile_records

log = logging.getLogger(__name__)


@dataclass
class DrillResult:
    """What a drill found."""

    name: str
    passed: bool = False
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, problem: str) -> None:
        """Record a problem; the drill fails."""
        self.problems.append(problem)

    def done(self, started: float) -> DrillResult:
        """Record the drill's duration; it passed if it found no problem."""
        self.seconds = time.monotonic() - started
        self.passed = not self.problems
        return self

    def absorb(self, findings: Findings, prefix: str = "") -> None:
        """Take the output checks' figures and problems."""
        self.figures.update({f"{prefix}{k}": v for k, v in findings.figures.items()})
        self.problems.extend(f"{prefix}{line}" for line in findings.lines())


#: Problems that at-least-once processing allows: outputs repeated after a crash (and the
#: snapshots a repeated firstSession verdict holds back again, see verify.py).
REPEATS = frozenset(
    {
        "repeated updateCount (duplicate snapshot)",
        "snapshots held again until a repeated verdict",
        "updateCount went back",
        "transition duplicated or unexpected",
        "transitions out of order",
        "dead letter duplicated",
    }
)


async def _settle(
    drill: Drill,
    expectation: Expectation,
    result: DrillResult,
    allow_repeats: bool = False,
    **wait: Any,
) -> None:
    """Wait for the outputs to match the replay, then run every check.

    With allow_repeats (at_least_once), repeated outputs are counted in the figures instead of
    failing the drill; everything else (a lost or wrong output) still fails it.
    """
    result.figures["expected"] = expectation.summary()
    if expectation.ambiguous:
        result.fail(f"replay order ambiguous for {len(expectation.ambiguous)} sessions")
    waited = await drill.wait_outputs(expectation, **wait)
    if waited is None:
        result.fail(
            f"outputs did not match the replay in time: {drill.outputs.behind(expectation)}"
        )
    else:
        result.figures["outputs_complete_after_s"] = round(waited, 1)
    findings = drill.outputs.check(expectation)
    if allow_repeats:
        repeats = {kind: n for kind, n in findings.problems.items() if kind in REPEATS}
        result.figures["repeats_allowed_by_at_least_once"] = repeats
        for kind in repeats:
            del findings.problems[kind]
    result.absorb(findings)


def _seconds(samples: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(samples), 1), "max": round(max(samples), 1)}


async def _settle_after_kills(drill: Drill, result: DrillResult, guarantee: str) -> None:
    """Replay the input as it ended up, wait for the outputs, check them; workers must live."""
    expectation = await drill.expectation()
    await _settle(drill, expectation, result, allow_repeats=guarantee == "at_least_once")
    drill.check_workers_alive()


# --------------------------------------------------------------------------------------- kill -9


async def kill9(
    options: DrillOptions,
    events: int = 50_000,
    sessions: int = 3_000,
    kills: int = 20,
    rate: float | None = None,
    guarantee: str = "exactly_once",
) -> DrillResult:
    """SIGKILL the worker at random moments while a producer writes; restart it each time."""
    result = DrillResult("kill9")
    started = time.monotonic()
    async with Drill(options, "kill9", guarantee=guarantee) as drill:
        worker = drill.worker()
        records = list(generate_workload(options.seed, sessions, events))
        # Spread the input over the kill phase (a restart takes about 10-15 s here).
        rate = rate or max(50.0, events / (kills * 11.0))
        result.figures.update(
            events=events,
            sessions=sessions,
            kills=kills,
            rate_per_s=round(rate),
            guarantee=guarantee,
        )
        await drill.start(worker)
        producer = drill.producer(records, rate).start()
        restarts: list[float] = []
        moments = Counter[str]()
        spawned_at: float | None = None  # None: the first start, already healthy
        for _ in range(kills):
            if spawned_at is not None and drill.rng.random() < 0.25:
                # Somewhere in start-up: joining the group, restoring tables, or just ready.
                await asyncio.sleep(drill.rng.uniform(1.0, 8.0))
                moments["during start-up"] += 1
            else:
                await asyncio.to_thread(worker.wait_healthy, 180.0)
                if spawned_at is not None:
                    restarts.append(time.monotonic() - spawned_at)
                await asyncio.sleep(drill.rng.uniform(0.2, 6.0))
                moments["while processing"] += 1
            await drill.kill(worker)
            await drill.spawn(worker)
            spawned_at = time.monotonic()
        await asyncio.to_thread(worker.wait_healthy, 180.0)
        await producer.wait()
        result.figures["kill_moments"] = dict(moments)
        if restarts:
            result.figures["restart_to_healthy_s"] = _seconds(restarts)
        await _settle_after_kills(drill, result, guarantee)
    return result.done(started)


# ----------------------------------------------------------------------------------- state wiped


def _log_restore(log_path: Path) -> dict[str, float | None]:
    """Restore timing of the last worker process in a log: join -> restore done -> ready."""
    text = log_path.read_text(errors="replace")
    pids = re.findall(r"^\[[^\]]+\] \[(\d+)\]", text, re.M)
    if not pids:
        return {}
    pid = pids[-1]
    lines = [line for line in text.splitlines() if f"] [{pid}] " in line]

    def at(pattern: str) -> datetime | None:
        for line in lines:
            if pattern in line:
                return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        return None

    start, done = at("Restoring state from changelog topics"), at("Restore complete!")
    seconds = (done - start).total_seconds() if start and done else None
    return {"changelog_read_s": seconds}


async def _session_answers(worker: WorkerProcess, ids: list[str]) -> dict[str, bytes]:
    def fetch() -> dict[str, bytes]:
        answers = {}
        for integration_id in ids:
            status, body = worker.get(f"/sessions/{urllib.parse.quote(integration_id, safe='')}")
            answers[integration_id] = body if status == 200 else f"HTTP {status}".encode()
        return answers

    return await asyncio.to_thread(fetch)


async def state_wiped(
    options: DrillOptions, events: int = 30_000, sessions: int = 3_000, after: int = 2_000
) -> DrillResult:
    """Stop the worker, delete its data directory, start it: the state comes back from Kafka."""
    result = DrillResult("state_wiped")
    started = time.monotonic()
    async with Drill(options, "state-wiped") as drill:
        worker = drill.worker()
        records = list(generate_workload(options.seed, sessions, events + after))
        await drill.start(worker)
        await drill.producer(records[:events], rate=1e9).start().wait()
        expectation = await drill.expectation()
        await _settle(drill, expectation, result, timeout=900.0)
        ids = sorted(expectation.sessions)
        before = await _session_answers(worker, ids)
        wrong = [i for i in ids if before[i] != drill.outputs.last_snapshot.get(i)]
        if wrong:
            result.fail(f"{len(wrong)} GET /sessions answers differ from the last snapshot")

        # A clean restart keeps the local tables; then the wipe.
        await drill.stop(worker)
        clean = await drill.start(worker)
        result.figures["clean_restart_to_healthy_s"] = round(clean, 1)
        result.figures["clean_restart"] = _log_restore(worker.log_path)
        await drill.stop(worker)
        shutil.rmtree(worker.settings.data_dir)
        changelogs = [
            f"{drill.prefix}-{table}-changelog" for table in ("sessions", "profiles", "expiries")
        ]
        restored_records = sum((await count_records(drill.bootstrap, changelogs)).values())
        wiped = await drill.start(worker)
        restore = _log_restore(worker.log_path)
        read_s = restore.get("changelog_read_s")
        result.figures["wiped_restart_to_healthy_s"] = round(wiped, 1)
        result.figures["changelog_records"] = restored_records
        result.figures["changelog_read_s"] = round(read_s, 2) if read_s else None
        result.figures["restore_records_per_s"] = (
            round(restored_records / read_s) if read_s else None
        )
        result.figures["restore_records_per_s_incl_startup"] = round(restored_records / wiped)
        after_answers = await _session_answers(worker, ids)
        differ = [i for i in ids if after_answers[i] != before[i]]
        result.figures["sessions_compared"] = len(ids)
        if differ:
            result.fail(
                f"{len(differ)} of {len(ids)} sessions answer differently after the restore, "
                f"e.g. {differ[0]}: {before[differ[0]][:200]!r} "
                f"-> {after_answers[differ[0]][:200]!r}"
            )
        # The restored state must also be the state later events build on.
        await drill.producer(records[events:], rate=1e9).start().wait()
        expectation = await drill.expectation()
        await _settle(drill, expectation, result, timeout=600.0)
        drill.check_workers_alive()
    result.seconds = time.monotonic() - started
    result.passed = not result.problems
    return result


# -------------------------------------------------------------------------------- broker restart


def _kafka(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SCRIPT), command], capture_output=True, text=True, check=False
    )


async def broker_restart(
    options: DrillOptions, events: int = 20_000, sessions: int = 2_000, rate: float = 400.0
) -> DrillResult:
    """Stop and start the local broker while the worker runs under load."""
    result = DrillResult("broker_restart")
    started = time.monotonic()
    host = options.bootstrap.split(",")[0].rsplit(":", 1)[0]
    if host not in {"127.0.0.1", "localhost"}:
        result.fail(f"broker restart needs the local broker, not {options.bootstrap}")
        return result
    async with Drill(options, "broker-restart") as drill:
        worker = drill.worker()
        records = list(generate_workload(options.seed, sessions, events))
        await drill.start(worker)
        producer = drill.producer(records, rate).start()
        await asyncio.sleep(events / rate / 3)
        outputs_before = len(drill.outputs.snapshots.records)
        stop_at = time.monotonic()
        try:
            stopped = await asyncio.to_thread(_kafka, "stop")
            down_at = time.monotonic()
            if stopped.returncode != 0:
                result.fail(f"kafka.sh stop failed: {stopped.stderr.strip()}")
        finally:
            # Others use this broker: start it again whatever happened.
            up = await asyncio.to_thread(_kafka, "start")
        up_at = time.monotonic()
        if up.returncode != 0:
            result.fail(f"kafka.sh start failed: {up.stdout.strip()} {up.stderr.strip()}")
            return result
        result.figures["broker_stop_s"] = round(down_at - stop_at, 1)
        result.figures["broker_down_s"] = round(up_at - down_at, 1)
        result.figures["snapshots_before_stop"] = outputs_before
        # Recovered: healthy again, and outputs flowing again.
        recovered = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            drill.check_workers_alive()
            if worker.health() == 200 and drill.outputs.last_record_at > up_at:
                recovered = time.monotonic() - up_at
                break
            await asyncio.sleep(0.5)
        if recovered is None:
            result.fail("the worker did not resume within 300 s of the broker's return")
        else:
            result.figures["worker_resumed_after_broker_up_s"] = round(recovered, 1)
        await producer.wait()
        result.figures.update(events=events, sessions=sessions, rate_per_s=rate)
        expectation = await drill.expectation()
        await _settle(drill, expectation, result)
        restarts = worker.log_path.read_text(errors="replace").count("[^Worker]: Starting...")
        result.figures["worker_process_starts"] = restarts
        drill.check_workers_alive()
    result.seconds = time.monotonic() - started
    result.passed = not result.problems
    return result


# ------------------------------------------------------------------------------------- failover


def _owned_partitions(worker: WorkerProcess) -> set[int] | None:
    """Active changelog partitions of a worker, from its GET /partitions."""
    try:
        with urllib.request.urlopen(f"{worker.url}/partitions", timeout=5) as response:
            active = json.loads(response.read())["active"]
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None
    owned: set[int] = set()
    for topic, partitions in active.items():
        if topic.endswith("-sessions-changelog"):
            owned.update(partitions)
    return owned


async def failover(
    options: DrillOptions,
    events: int = 30_000,
    sessions: int = 3_000,
    rate: float = 300.0,
    partitions: int = 8,
) -> DrillResult:
    """Two workers with standby replicas; SIGKILL one under load; the other takes over."""
    result = DrillResult("failover")
    started = time.monotonic()
    async with Drill(options, "failover", partitions=partitions) as drill:
        drill.worker_env["STREAM_APP_STANDBY_REPLICAS"] = "1"
        survivor, victim = drill.worker(0), drill.worker(1)
        records = list(generate_workload(options.seed, sessions, events))
        await drill.start(survivor)
        await drill.start(victim)
        # Both healthy means the group settled with both (a rebalance happens as B joins).
        await asyncio.to_thread(survivor.wait_healthy, 180.0)
        producer = drill.producer(records, rate).start()
        await asyncio.sleep(max(10.0, events / rate / 3))
        owned = _owned_partitions(victim)
        result.figures["victim_partitions"] = sorted(owned) if owned is not None else None
        kill_wall = time.time()
        await drill.kill(victim)
        await producer.wait()
        result.figures.update(events=events, sessions=sessions, rate_per_s=rate)
        expectation = await drill.expectation()
        await _settle(drill, expectation, result)
        # Take-over: first output record after the kill on each of the victim's partitions
        # (outputs land on the partition of their input, and the load covers every partition).
        first_after: dict[int, float] = {}
        for tail in drill.outputs.tails:
            for record in tail.records:
                if record.timestamp / 1000 > kill_wall:
                    at = record.timestamp / 1000 - kill_wall
                    first_after[record.partition] = min(first_after.get(record.partition, at), at)
        victims = owned if owned else set(range(partitions))
        gaps = {p: round(first_after[p], 1) for p in sorted(victims) if p in first_after}
        result.figures["first_output_after_kill_s"] = gaps
        if gaps:
            result.figures["takeover_s"] = max(gaps.values())
        if set(victims) - set(gaps):
            result.fail(
                f"no output after the kill on partitions {sorted(set(victims) - set(gaps))}"
            )
        text = survivor.log_path.read_text(errors="replace")
        result.figures["survivor_rebalances"] = text.count("Setting newly assigned partitions")
        drill.check_workers_alive()
    result.seconds = time.monotonic() - started
    result.passed = not result.problems
    return result


# ---------------------------------------------------------------------------------- poison flood


async def poison_flood(
    options: DrillOptions, hostile: int = 10_000, valid: int = 10_000, sessions: int = 1_000
) -> DrillResult:
    """Hostile records interleaved with valid ones: all dead-lettered, the valid ones applied."""
    result = DrillResult("poison_flood")
    started = time.monotonic()
    async with Drill(options, "poison") as drill:
        worker = drill.worker()
        good = list(generate_workload(options.seed, sessions, valid))
        bad = list(hostile_records(options.seed, hostile))
        # Interleave: the order of each list is kept, positions are random.
        mixed: list[tuple[Any, bytes]] = []
        gi = bi = 0
        while gi < len(good) or bi < len(bad):
            take_bad = bi < len(bad) and (
                gi >= len(good) or drill.rng.random() < len(bad) / (len(bad) + len(good))
            )
            if take_bad:
                mixed.append(bad[bi])
                bi += 1
            else:
                mixed.append(good[gi])
                gi += 1
        kinds = list(HOSTILE_KINDS)
        result.figures["hostile_by_kind"] = {
            kind: len(range(i, hostile, len(kinds))) for i, kind in enumerate(kinds)
        }
        result.figures["input_bytes"] = sum(len(value) for _, value in mixed)
        await drill.start(worker)
        produce_started = time.monotonic()
        await drill.producer(mixed, rate=1e9).start().wait()
        result.figures.update(hostile=hostile, valid=valid, records=len(mixed))
        expectation = await drill.expectation()
        await _settle(drill, expectation, result, timeout=900.0, stall=180.0)
        result.figures["seconds_to_process"] = round(time.monotonic() - produce_started, 1)
        result.figures["records_per_s"] = round(len(mixed) / (time.monotonic() - produce_started))
        # Every hostile record must be rejected, except the null-key one, which is a valid
        # event without a key: re-keyed and applied, as the contract says.
        rejected_values = Counter(r.record.value for r in expectation.rejections.values())
        missing_hostile = 0
        for key, value in bad:
            if key is None:
                continue
            if rejected_values[value] == 0:
                missing_hostile += 1
            else:
                rejected_values[value] -= 1
        if missing_hostile:
            result.fail(f"{missing_hostile} hostile records were not rejected by the replay")
        result.figures["dead_letter_bytes"] = sum(
            len(r.value) for r in drill.outputs.dead_letters.records
        )
        restarts = worker.log_path.read_text(errors="replace").count("[^Worker]: Starting...")
        if restarts != 1:
            result.fail(f"the worker started {restarts} times (crashed?)")
        drill.check_workers_alive()
    result.seconds = time.monotonic() - started
    result.passed = not result.problems
    return result


# ----------------------------------------------------------------------------------------- chaos


async def chaos(
    options: DrillOptions,
    events: int = 19_000,
    sessions: int = 3_000,
    workers: int = 2,
    kills: int = 20,
    partitions: int = 4,
    guarantee: str = "exactly_once",
) -> DrillResult:
    """Several workers; a random one is SIGKILLed and restarted at once, again and again.

    The stream is produced the whole time. Some kills hit a worker that is still starting
    (joining, restoring its tables), some come back to back. Afterwards the outputs must equal
    the replay through the core: nothing lost and, under exactly_once, nothing repeated.
    """
    result = DrillResult(f"chaos_{guarantee}")
    started = time.monotonic()
    async with Drill(options, "chaos", partitions=partitions, guarantee=guarantee) as drill:
        pool = [drill.worker(index) for index in range(workers)]
        records = list(generate_workload(options.seed, sessions, events))
        for worker in pool:
            await drill.start(worker)
        # The input is spread over the kill phase (about 4 s between kills).
        rate = max(50.0, events / (kills * 4.0))
        result.figures.update(
            events=events, sessions=sessions, workers=workers, kills=kills,
            partitions=partitions, rate_per_s=round(rate), guarantee=guarantee,
        )  # fmt: skip
        producer = drill.producer(records, rate).start()
        moments = Counter[str]()
        spawned_at: dict[int, float] = {}
        resumed: list[float] = []

        def note_resumed() -> None:
            # Restarted and consuming again: the worker answers /health (ready) once more.
            for index, at in list(spawned_at.items()):
                if pool[index].health() == 200:
                    resumed.append(time.monotonic() - at)
                    del spawned_at[index]

        async def pause(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.to_thread(note_resumed)
                await asyncio.sleep(0.25)

        for _ in range(kills):
            roll = drill.rng.random()
            if roll < 0.2:
                moments["back to back"] += 1
                await pause(drill.rng.uniform(0.2, 1.5))
            elif roll < 0.4:
                moments["during start-up or restore"] += 1
                await pause(drill.rng.uniform(1.0, 5.0))
            else:
                moments["while processing"] += 1
                await pause(drill.rng.uniform(2.0, 6.0))
            index = drill.rng.randrange(workers)
            if index in spawned_at:
                moments["before the previous restart was ready"] += 1
            await drill.kill(pool[index])
            spawned_at.pop(index, None)
            await drill.spawn(pool[index])
            spawned_at[index] = time.monotonic()
        for worker in pool:
            await asyncio.to_thread(worker.wait_healthy, 300.0)
        await asyncio.to_thread(note_resumed)
        await producer.wait()
        result.figures["kill_moments"] = dict(moments)
        result.figures["restarts"] = kills
        if resumed:
            result.figures["restart_to_ready_s"] = {
                "each": [round(seconds, 1) for seconds in resumed],
                **_seconds(resumed),
            }
        await _settle_after_kills(drill, result, guarantee)
    return result.done(started)


async def chaos_at_least_once(options: DrillOptions, **sizes: Any) -> DrillResult:
    """The chaos drill under at_least_once: repeats allowed and counted, nothing lost."""
    return await chaos(options, guarantee="at_least_once", **sizes)


async def kill9_at_least_once(options: DrillOptions, **sizes: Any) -> DrillResult:
    """The kill -9 drill under at_least_once: repeats allowed and counted, nothing lost."""
    result = await kill9(options, guarantee="at_least_once", **sizes)
    result.name = "kill9_at_least_once"
    return result


DRILLS: dict[str, Callable[..., Awaitable[DrillResult]]] = {
    "chaos": chaos,
    "chaos_at_least_once": chaos_at_least_once,
    "kill9": kill9,
    "kill9_at_least_once": kill9_at_least_once,
    "state_wiped": state_wiped,
    "broker_restart": broker_restart,
    "failover": failover,
    "poison_flood": poison_flood,
}
