"""`make demo`: one worker on a generated stream of customer-session events, and a summary.

    python -m dev.demo [--sessions 3000] [--events 20000] [--seed 7] [--keep]

Starts `stream-app worker` as a child process on topics of its own (`demo-<run id>-...`), sends
a deterministic stream (carts, coupons, logins, profiles shared by several sessions, closes,
returns, cancels, and a few bad and duplicate records), waits until the worker has handled every
record, reads the output topics back, and prints what happened. It checks as it goes and exits
non-zero when something does not add up: the worker dies or stalls, the metrics disagree with
the stream that was sent, an output record is missing or extra, a profile has no single first
session, or GET /sessions disagrees with the snapshot topic.

The broker comes from STREAM_APP_BROKER (`make demo` starts the local one when none is given).
The worker's log and state live under `.local/demo/<run id>/`. After a successful run the
state and the run's topics are deleted (unless `--keep` is given) and the log is kept; after a
failed one everything is kept for a look. The broker is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from dev.harness.kafka import bootstrap_from_env, delete_topics, read_all
from dev.harness.metrics import WorkerMetrics
from dev.harness.settle import WaitTimeout, settle
from dev.harness.workers import WorkerProcess, settings_for
from dev.harness.workload import generate_workload
from stream_app.domain import (
    CustomerSession,
    decode_customer_session,
    decode_rejection,
    decode_transition,
)

DEMO_DIR = Path(".local/demo")
BAD_RATIO = 0.01
DUPLICATE_RATIO = 0.01
#: How long the worker may take to become healthy, and then to work through the stream.
START_TIMEOUT = 120.0
PROCESS_TIMEOUT = 300.0
#: How long the output topics may take to show every record the worker counted as sent.
READ_TIMEOUT = 60.0
#: How long the worker may take to stop on SIGTERM before it is killed.
STOP_TIMEOUT = 30.0


class DemoFailure(Exception):
    """Something the demo checks did not hold; the message says what."""


@dataclass
class Outputs:
    """What the worker wrote, read back from its output topics."""

    snapshots: int
    latest: dict[str, CustomerSession]
    transitions: Counter[str]
    created: int
    dead_letters: Counter[str]


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the exit status is 0 only if every check held."""
    parser = argparse.ArgumentParser(
        prog="python -m dev.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=3000, help="sessions (default 3000)")
    parser.add_argument("--events", type=int, default=20000, help="records (default 20000)")
    parser.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
    parser.add_argument(
        "--partitions", type=int, default=8, help="partitions of the demo topics (default 8)"
    )
    parser.add_argument(
        "--guarantee",
        choices=("exactly_once", "at_least_once"),
        default="exactly_once",
        help="STREAM_APP_PROCESSING_GUARANTEE of the worker (default exactly_once)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and state")
    args = parser.parse_args(argv)

    bootstrap = bootstrap_from_env()
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    prefix = f"demo-{run_id}"
    run_dir = DEMO_DIR / run_id
    settings = settings_for(
        bootstrap, prefix, run_dir / "data", partitions=args.partitions, guarantee=args.guarantee
    )
    worker = WorkerProcess(settings, run_dir / "worker.log")

    print(f"stream-app demo, run {run_id}")
    print(
        f"  broker {bootstrap}, topics {prefix}-*, {args.partitions} partitions, {args.guarantee}"
    )
    print(f"  worker log {worker.log_path}")
    print()
    ok = False
    try:
        _run(worker, bootstrap, args)
        ok = True
    except DemoFailure as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr, flush=True)
    except KafkaError as exc:
        print(f"\nFAILED: Kafka at {bootstrap}: {exc!r}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
    finally:
        print("stopping the worker (SIGTERM) ...", flush=True)
        stopping = time.monotonic()
        code = worker.stop(timeout=STOP_TIMEOUT)
        seconds = time.monotonic() - stopping
        if code == 0:
            print(f"  stopped in {seconds:.1f} s, exit status 0")
        elif ok:
            ok = False
            print(
                f"\nFAILED: the worker did not stop cleanly on SIGTERM (exit status {code} after "
                f"{seconds:.0f} s; a negative status is the signal that ended it)\n{worker.tail()}",
                file=sys.stderr,
                flush=True,
            )
        if ok and not args.keep:
            deleted = asyncio.run(delete_topics(bootstrap, f"{prefix}-"))
            shutil.rmtree(run_dir / "data", ignore_errors=True)
            print(f"deleted the run's {len(deleted)} topics ({prefix}-*); --keep keeps them")
        else:
            print(f"kept the run's topics ({prefix}-*) and the worker's state ({run_dir}/data)")
    print(f"the broker at {bootstrap} is still running (`make kafka-down` stops the local one)")
    if not ok:
        print(f"the worker's log: {worker.log_path}", file=sys.stderr)
    return 0 if ok else 1


def _run(worker: WorkerProcess, bootstrap: str, args: argparse.Namespace) -> None:
    records = list(
        generate_workload(args.seed, args.sessions, args.events, BAD_RATIO, DUPLICATE_RATIO)
    )
    bad = round(args.events * BAD_RATIO)
    duplicates = round(args.events * DUPLICATE_RATIO)
    valid = len(records) - bad - duplicates

    with _step("starting the worker (it creates its topics)"):
        try:
            worker.start(timeout=START_TIMEOUT)
        except (RuntimeError, TimeoutError) as exc:
            raise DemoFailure(str(exc)) from None

    started = time.monotonic()
    with _step(f"sending {len(records)} records over {args.sessions} sessions (seed {args.seed})"):
        sent = _produce(worker, records)
    produced = time.monotonic()

    with _step("waiting until the worker has handled every record"):
        metrics = _settle(worker, sent, started)
    elapsed = time.monotonic() - started

    with _step("reading the output topics back"):
        outputs = _read_outputs(bootstrap, worker, metrics)

    lookup = _pick_session(outputs.latest)
    status, body = worker.get(f"/sessions/{lookup.integration_id}")
    missing_status, missing_body = worker.get("/sessions/no-such-session")

    checks = _check(
        sent=sent,
        valid=valid,
        bad=bad,
        duplicates=duplicates,
        sessions=args.sessions,
        metrics=metrics,
        outputs=outputs,
        lookup=lookup,
        http=(status, body),
        missing=missing_status,
    )
    _print_summary(
        sent=sent,
        valid=valid,
        bad=bad,
        duplicates=duplicates,
        metrics=metrics,
        outputs=outputs,
        send_seconds=produced - started,
        elapsed=elapsed,
        partitions=args.partitions,
    )
    print(f"\nGET /sessions/{lookup.integration_id} -> {status}")
    print(json.dumps(json.loads(body), indent=2))
    print(f"GET /sessions/no-such-session -> {missing_status} {missing_body.decode()}")
    print("\nChecks")
    for line in checks:
        print(f"  ok  {line}")
    print("\n$ stream-app dlq summary")
    print(_stream_app(worker, "dlq", "summary").stdout, end="")
    print()


def _stream_app(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `stream-app ARGS` with the worker's settings; DemoFailure when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "stream_app", *args],
        env=worker.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DemoFailure(f"stream-app {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def _produce(worker: WorkerProcess, records: list[tuple[str | None, bytes]]) -> int:
    """Send the records with `stream-app produce`, as key<TAB>value lines (keys kept as made)."""
    path = worker.log_path.parent / "events.tsv"
    with path.open("wb") as f:
        for key, value in records:
            f.write((key or "").encode() + b"\t" + value + b"\n")
    done = _stream_app(worker, "produce", "--format", "keyed", "--strict", str(path))
    print(f"  $ stream-app produce --format keyed --strict {path}\n  {done.stdout.strip()}")
    match = re.match(r"sent (\d+) records", done.stdout)
    if match is None or int(match.group(1)) != len(records):
        raise DemoFailure(f"stream-app produce sent {done.stdout!r}, not {len(records)} records")
    return len(records)


@contextmanager
def _step(what: str) -> Iterator[None]:
    print(f"{what} ...", flush=True)
    started = time.monotonic()
    yield
    print(f"  done in {time.monotonic() - started:.1f} s", flush=True)


def _settle(worker: WorkerProcess, sent: int, started: float) -> WorkerMetrics:
    """Wait until the worker has an outcome for every record and a verdict for every claim."""

    def report(metrics: WorkerMetrics) -> None:
        rate = metrics.handled / (time.monotonic() - started)
        print(f"  {metrics.handled}/{sent} records handled ({rate:.0f}/s)", flush=True)

    try:
        return asyncio.run(settle(worker, records=sent, timeout=PROCESS_TIMEOUT, report=report))
    except (WaitTimeout, RuntimeError) as exc:
        raise DemoFailure(str(exc)) from None


def _read_outputs(bootstrap: str, worker: WorkerProcess, metrics: WorkerMetrics) -> Outputs:
    """Read the three output topics until they hold every record the worker counted."""
    settings = worker.settings
    expected = (
        metrics.count("stream_app_snapshots_sent_total"),
        metrics.by_label("stream_app_transitions_total", "to").total(),
        metrics.by_label("stream_app_events_rejected_total", "code").total(),
    )
    deadline = time.monotonic() + READ_TIMEOUT
    while True:
        snapshots, transitions, dead_letters = asyncio.run(
            _read_topics(
                bootstrap, [settings.output_topic, settings.transitions_topic, settings.dlq_topic]
            )
        )
        found = (len(snapshots), len(transitions), len(dead_letters))
        if found == expected:
            break
        if any(f > e for f, e in zip(found, expected, strict=True)) or (
            time.monotonic() >= deadline
        ):
            raise DemoFailure(
                "the output topics hold (snapshots, transitions, dead letters) = "
                f"{found}, the worker counted {expected}"
            )
        # Exactly-once outputs become readable when their transaction commits.
        time.sleep(1.0)

    latest: dict[str, CustomerSession] = {}
    for record in snapshots:
        session = decode_customer_session(record.value)
        if record.key != session.integration_id.encode():
            raise DemoFailure(f"snapshot key {record.key!r} is not its integrationId")
        latest[session.integration_id] = session
    moves = [decode_transition(record.value) for record in transitions]
    return Outputs(
        snapshots=len(snapshots),
        latest=latest,
        transitions=Counter(move.to for move in moves),
        created=sum(1 for move in moves if move.from_state is None),
        dead_letters=Counter(decode_rejection(record.value).error.code for record in dead_letters),
    )


async def _read_topics(bootstrap: str, topics: list[str]) -> list[list[Any]]:
    return list(await asyncio.gather(*(read_all(bootstrap, topic) for topic in topics)))


def _pick_session(latest: dict[str, CustomerSession]) -> CustomerSession:
    """A session worth showing: returned, with a profile and a coupon, a small cart."""

    def interest(session: CustomerSession) -> tuple[bool, bool, bool, bool, int, str]:
        return (
            session.state != "partially_returned",
            session.profile_id == "",
            session.coupon == "",
            len(session.cart_items) != 2,
            -session.update_count,
            session.integration_id,
        )

    if not latest:
        raise DemoFailure("the snapshot topic is empty")
    return min(latest.values(), key=interest)


def _check(
    *,
    sent: int,
    valid: int,
    bad: int,
    duplicates: int,
    sessions: int,
    metrics: WorkerMetrics,
    outputs: Outputs,
    lookup: CustomerSession,
    http: tuple[int, bytes],
    missing: int,
) -> list[str]:
    """Every check the demo makes; raises DemoFailure on the first that fails."""
    applied = metrics.count("stream_app_events_applied_total")
    skipped = metrics.count("stream_app_events_duplicate_total")
    rejected_by_code = metrics.by_label("stream_app_events_rejected_total", "code")
    transitions = metrics.by_label("stream_app_transitions_total", "to")
    snapshots_sent = metrics.count("stream_app_snapshots_sent_total")
    passed: list[str] = []

    def check(condition: bool, what: str, detail: str) -> None:
        if not condition:
            raise DemoFailure(f"{what}: {detail}")
        passed.append(what)

    rejected = rejected_by_code.total()
    events_consumed = metrics.events_consumed
    check(
        metrics.handled == events_consumed == sent,
        "applied + duplicates + rejected == events consumed == records sent",
        f"{applied} + {skipped} + {rejected} = {metrics.handled}, "
        f"consumed {events_consumed} events, sent {sent}",
    )
    check(
        (applied, skipped, rejected) == (valid, duplicates, bad),
        "every valid event applied, every duplicate skipped, every bad record rejected",
        f"applied/skipped/rejected {applied}/{skipped}/{rejected}, "
        f"the stream had {valid}/{duplicates}/{bad}",
    )
    verdicts_applied = metrics.count("stream_app_profile_verdicts_total")
    check(
        metrics.claims == metrics.verdicts == verdicts_applied,
        "every firstSession claim got its verdict, applied to its session",
        f"{metrics.claims} claims, {metrics.verdicts} verdicts read, {verdicts_applied} applied",
    )
    check(
        outputs.snapshots == snapshots_sent
        and outputs.transitions == transitions
        and outputs.dead_letters == rejected_by_code,
        "the output topics hold exactly the records the worker counted",
        f"topics {outputs.snapshots}/{dict(outputs.transitions)}/{dict(outputs.dead_letters)}, "
        f"metrics {snapshots_sent}/{dict(transitions)}/"
        f"{dict(rejected_by_code)}",
    )
    check(
        len(outputs.latest) == outputs.created == sessions,
        "one snapshot key and one creation per session",
        f"{len(outputs.latest)} keys, {outputs.created} creations, {sessions} sessions",
    )
    firsts: Counter[tuple[int, str]] = Counter()
    profiles: set[tuple[int, str]] = set()
    for session in outputs.latest.values():
        if session.profile_id:
            profiles.add((session.application_id, session.profile_id))
            firsts[(session.application_id, session.profile_id)] += session.first_session
    wrong = sorted(p for p in profiles if firsts[p] != 1)
    check(
        not wrong,
        f"each of the {len(profiles)} profiles has exactly one first session",
        f"{len(wrong)} profiles do not, e.g. {wrong[:5]}",
    )
    status, body = http
    check(
        status == 200 and decode_customer_session(body) == lookup,
        "GET /sessions/{id} answers the latest snapshot on the topic",
        f"status {status}, body {body[:200]!r}",
    )
    check(missing == 404, "GET /sessions of an unknown id answers 404", f"status {missing}")
    return passed


def _print_summary(
    *,
    sent: int,
    valid: int,
    bad: int,
    duplicates: int,
    metrics: WorkerMetrics,
    outputs: Outputs,
    send_seconds: float,
    elapsed: float,
    partitions: int,
) -> None:
    applied = metrics.count("stream_app_events_applied_total")
    skipped = metrics.count("stream_app_events_duplicate_total")
    rejected_by_code = metrics.by_label("stream_app_events_rejected_total", "code")
    snapshots_held = metrics.count("stream_app_snapshots_held_total")

    def row(label: str, value: object, note: str = "") -> None:
        print(f"  {label:<28}{value!s:>8}{'   ' + note if note else ''}")

    print("\nEvents")
    row("sent", sent, f"({valid} valid, {bad} bad, {duplicates} duplicates)")
    row("consumed by the worker", metrics.events_consumed)
    row("applied", applied)
    row("duplicates skipped", skipped)
    row("rejected (dead letters)", rejected_by_code.total())

    print("\nSessions by final state (latest snapshot per key)")
    states = Counter(session.state for session in outputs.latest.values())
    for state in ("open", "closed", "partially_returned", "cancelled"):
        row(state, states[state])
    row("total", len(outputs.latest))

    print("\nTransitions by target state")
    for state in ("open", "closed", "partially_returned", "cancelled"):
        row(state, outputs.transitions[state])
    row("total", outputs.transitions.total(), f"({outputs.created} of them create a session)")

    print("\nDead letters by code")
    for code, n in sorted(outputs.dead_letters.items(), key=lambda item: (-item[1], item[0])):
        row(code, n)

    print("\nfirstSession (latest snapshots)")
    latest = list(outputs.latest.values())
    anonymous = sum(1 for s in latest if not s.profile_id)
    first = sum(1 for s in latest if s.profile_id and s.first_session)
    row("true, anonymous", anonymous)
    row("true, first of its profile", first)
    row("false, a later session", len(latest) - anonymous - first)
    row("snapshots held for a verdict", snapshots_held, "(the latest is sent with it)")

    print("\nThroughput (one worker process)")
    row("records sent in", f"{send_seconds:.1f} s")
    row("all handled after", f"{elapsed:.1f} s", f"{sent / elapsed:.0f} records/s end to end")
    count = metrics.value("stream_app_processing_seconds_count")
    mean = metrics.value("stream_app_processing_seconds_sum") / count if count else 0.0
    p99 = metrics.histogram_bound("stream_app_processing_seconds", 0.99)
    p99_text = "n/a" if p99 is None else f"<= {p99 * 1000:g} ms"
    row("processing time per record", f"{mean * 1000:.2f} ms", f"mean; p99 {p99_text}")
    outputs_total = outputs.snapshots + outputs.transitions.total() + outputs.dead_letters.total()
    row("output records", outputs_total, "snapshots + transitions + dead letters")
    print(f"  ({partitions} partitions; the worker also handled {metrics.verdicts} verdicts)")


if __name__ == "__main__":
    sys.exit(main())
