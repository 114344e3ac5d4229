"""`make demo`: one worker on a generated stream of customer-session events, and a summary.

    python -m dev.demo [--sessions 3000] [--events 20000] [--seed 7] [--keep]

Starts `stream-app worker` as a child process on topics of its own (`demo-<run id>-...`), sends
a deterministic stream (carts, coupons, logins, profiles shared by several sessions, closes,
returns, cancels, and a few bad and duplicate records), waits until the worker has handled every
record, reads the output topics back, and prints what happened. It checks as it goes and exits
non-zero when something does not add up: the worker dies or stalls, the metrics disagree with
the stream that was sent, an output record is missing or extra, a profile has no single first
session, GET /sessions disagrees with the snapshot topic, or the statistics per application on
the stats topic (or GET /stats) differ from an offline aggregation of the input topic.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from dev.harness.kafka import bootstrap_from_env, delete_topics, read_all
from dev.harness.metrics import WorkerMetrics
from dev.harness.replay import InputRecord, replay
from dev.harness.settle import WaitTimeout, settle, wait_until
from dev.harness.stats import ExpectedStats, expected_stats
from dev.harness.workers import WorkerProcess, settings_for
from dev.harness.workload import generate_workload
from stream_app.domain import (
    Applied,
    CustomerSession,
    decode_customer_session,
    decode_rejection,
    decode_transition,
)
from stream_app.domain.stats import (
    Figures,
    Windowing,
    WindowStats,
    decode_window_stats,
    encode_window_stats,
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
#: How long the stats topic may take, once the worker has handled the stream, to hold every
#: window of the offline aggregation (idle ticks close them STATS_IDLE after the last record).
STATS_TIMEOUT = 90.0
#: The statistics settings of the demo's worker (seconds). The stream's occurredAt values cover
#: about a day in no global order (each session has its own clock), so with the default
#: 1-minute windows and 5-minute grace most events would come after their window had closed on
#: their partition and count as late. Hour windows that stay open for a day of stream time
#: count all but a handful; those few are late, as the offline aggregation finds too.
STATS_WINDOW = 3600
STATS_GRACE = 86400
#: Once the stream has been handled, the idle ticks move each partition's stream time to today
#: and so close every window. A tick before a partition's last event would make that event and
#: the ones after it late, which the offline aggregation does not model: 10 s of idle leaves
#: room for the moments between the worker becoming healthy and the stream reaching it.
STATS_IDLE = 10
#: The statistics figures of a window, as named on WindowStats and Figures.
FIGURES = (
    "sessions_created", "sessions_closed", "sessions_cancelled", "sessions_partially_returned",
    "revenue_closed", "returned_value", "abandoned_value", "coupons_applied", "events_applied",
)  # fmt: skip


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


@dataclass
class Stats:
    """The statistics of the run: the stats topic, and the offline aggregation of the input."""

    windowing: Windowing
    published: list[WindowStats]
    expected: ExpectedStats
    #: Events the offline replay applied, per applicationId (counted in a window, or late).
    applied: Counter[int]
    #: stream_app_stats_late_events_total by `where` (source, combiner), the windows closed.
    late: Counter[str]
    ticks: int
    #: Input partitions that had an idle tick sent before their last record (none expected).
    early_ticks: list[int]

    def caveat(self) -> str:
        """Why the worker may rightly differ from the offline aggregation; "" when nothing."""
        return _early_ticks_note(self.early_ticks)


def _early_ticks_note(partitions: list[int]) -> str:
    if not partitions:
        return ""
    return (
        f"; partitions {partitions} had an idle tick sent before their last record, which "
        "moves their stream time to now (the offline aggregation has no ticks)"
    )


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
    # Windows that suit the stream (see STATS_WINDOW), kept for ever: the stream's day is in the
    # past, and the default 7-day retention, counted back from the stream time the idle ticks
    # set (today), would drop each window from GET /stats as soon as it closes.
    settings = replace(
        settings,
        stats_window=STATS_WINDOW,
        stats_grace=STATS_GRACE,
        stats_idle=STATS_IDLE,
        stats_retention=None,
    )
    worker = WorkerProcess(settings, run_dir / "worker.log")

    print(f"stream-app demo, run {run_id}")
    print(
        f"  broker {bootstrap}, topics {prefix}-*, {args.partitions} partitions, {args.guarantee}"
    )
    print(
        f"  statistics in {_span(STATS_WINDOW)} windows, {_span(STATS_GRACE)} of grace, "
        f"idle ticks after {_span(STATS_IDLE)}"
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

    with _step("waiting until the stats topic holds every window of the offline aggregation"):
        stats = _read_stats(bootstrap, worker, sent)

    lookup = _pick_session(outputs.latest)
    status, body = worker.get(f"/sessions/{lookup.integration_id}")
    missing_status, missing_body = worker.get("/sessions/no-such-session")
    application_id = _pick_application(stats)
    stats_status, stats_body = worker.get(f"/stats/{application_id}")

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
        stats=stats,
        stats_http=(application_id, stats_status, stats_body),
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
        stats=stats,
    )
    print(f"\nGET /sessions/{lookup.integration_id} -> {status}")
    print(json.dumps(json.loads(body), indent=2))
    print(f"GET /sessions/no-such-session -> {missing_status} {missing_body.decode()}")
    answered = json.loads(stats_body)["windows"]
    closed = sum(1 for window in answered if window["closed"])
    print(
        f"GET /stats/{application_id} -> {stats_status} ({len(answered)} windows, {closed} closed)"
    )
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


def _read_stats(bootstrap: str, worker: WorkerProcess, sent: int) -> Stats:
    """Aggregate the input topic offline, as one worker applies it, then wait until the stats
    topic holds every window that aggregation has (the idle ticks close them)."""
    settings = worker.settings
    windowing = Windowing(settings.stats_window, settings.stats_grace)
    records, ticks = asyncio.run(
        _read_topics(bootstrap, [settings.input_topic, settings.stats_ticks_topic])
    )
    if len(records) != sent:
        raise DemoFailure(f"the input topic holds {len(records)} records, {sent} were sent")
    # Read back, the records have the partitions and offsets the worker read them at.
    steps = list(replay(map(InputRecord.from_consumer_record, records), answer_claims=True))
    expected = expected_stats(steps, windowing)
    applied = Counter(
        step.outcome.stored.session.application_id
        for step in steps
        if isinstance(step.outcome, Applied)
    )
    # Ticks sent so far: one sent before its partition's last record (send times, ms) may have
    # moved the partition's stream time past the rest of its events, which then are late.
    last_sent: dict[int, int] = {}
    for record in records:
        last_sent[record.partition] = max(record.timestamp, last_sent.get(record.partition, 0))
    early = sorted(
        {tick.partition for tick in ticks if tick.timestamp < last_sent.get(tick.partition, 0)}
    )

    published: list[WindowStats] = []

    async def complete() -> bool:
        nonlocal published
        found = await read_all(bootstrap, settings.stats_topic)
        published = [decode_window_stats(record.value) for record in found]
        return set(expected.windows) <= {_window_of(stats) for stats in published}

    try:
        asyncio.run(
            wait_until(
                complete,
                timeout=STATS_TIMEOUT,
                interval=1.0,
                what="every window on the stats topic",
                check=worker.check_alive,
            )
        )
    except WaitTimeout:
        missing = sorted(set(expected.windows) - {_window_of(stats) for stats in published})
        scrape = worker.metrics()
        ticks_sent = "?" if scrape is None else scrape.count("stream_app_stats_ticks_total")
        raise DemoFailure(
            f"after {STATS_TIMEOUT:.0f} s the stats topic holds {len(published)} windows and "
            f"lacks {len(missing)} of the {len(expected.windows)} the offline aggregation has, "
            f"e.g. {[_window_text(w) for w in missing[:3]]}; the worker sent {ticks_sent} idle "
            f"ticks (after STREAM_APP_STATS_IDLE={settings.stats_idle}s without input)"
            f"{_early_ticks_note(early)}"
        ) from None
    except RuntimeError as exc:
        raise DemoFailure(str(exc)) from None
    metrics = worker.metrics()
    if metrics is None:
        raise DemoFailure("GET /metrics did not answer 200 after the windows closed")
    return Stats(
        windowing=windowing,
        published=published,
        expected=expected,
        applied=applied,
        late=metrics.by_label("stream_app_stats_late_events_total", "where"),
        ticks=metrics.count("stream_app_stats_ticks_total"),
        early_ticks=early,
    )


def _window_of(stats: WindowStats) -> tuple[int, int]:
    """(applicationId, window start in epoch seconds): how the offline aggregation keys it."""
    return stats.application_id, int(stats.window_start.timestamp())


def _window_text(window: tuple[int, int]) -> str:
    application_id, start = window
    return f"{application_id}@{datetime.fromtimestamp(start, UTC):%Y-%m-%dT%H:%M}Z"


def _figures(source: WindowStats | Figures) -> dict[str, Any]:
    return {name: getattr(source, name) for name in FIGURES}


def _pick_application(stats: Stats) -> int:
    """The application with the most windows (the smallest id among equals)."""
    windows = Counter(application_id for application_id, _ in stats.expected.windows)
    if not windows:
        raise DemoFailure("the offline aggregation has no window")
    return min(windows, key=lambda application_id: (-windows[application_id], application_id))


def _span(seconds: int) -> str:
    """A duration in its largest whole unit: 1 d, 1 h, 5 s."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


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
    stats: Stats,
    stats_http: tuple[int, int, bytes],
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
    _check_stats(check, stats, stats_http)
    return passed


def _check_stats(
    check: Callable[[bool, str, str], None], stats: Stats, http: tuple[int, int, bytes]
) -> None:
    """The statistics checks: the stats topic, the late-event count and GET /stats against the
    offline aggregation of the input topic."""
    expected = stats.expected
    caveat = stats.caveat()
    windows = Counter(_window_of(published) for published in stats.published)
    repeated = sorted(window for window, n in windows.items() if n > 1)
    missing = sorted(set(expected.windows) - set(windows))
    extra = sorted(set(windows) - set(expected.windows))
    check(
        not (repeated or missing or extra),
        f"the stats topic holds each of the {len(expected.windows)} windows of the offline "
        "aggregation once, and no other",
        f"{len(repeated)} twice, {len(missing)} missing, {len(extra)} extra, e.g. "
        f"{[_window_text(w) for w in (repeated + missing + extra)[:3]]}{caveat}",
    )
    size = stats.windowing.size
    wrong = [
        published
        for published in stats.published
        if not published.closed
        or (published.window_end - published.window_start).total_seconds() != size
        or _figures(published) != _figures(expected.windows[_window_of(published)])
    ]
    first = (
        f"e.g. {_window_text(_window_of(wrong[0]))}: {wrong[0]} instead of "
        f"{expected.windows[_window_of(wrong[0])]}"
        if wrong
        else ""
    )
    check(
        not wrong,
        "every window is closed, spans the window size and has the offline figures",
        f"{len(wrong)} of {len(stats.published)} windows do not, {first}{caveat}",
    )
    source, combiner = stats.late["source"], stats.late["combiner"]
    check(
        source == expected.late and combiner == 0,
        f"the worker counted the {expected.late} late events of the offline aggregation",
        f"stream_app_stats_late_events_total: source {source}, combiner {combiner}; offline "
        f"{expected.late}{caveat}",
    )
    application_id, status, body = http
    on_topic = sorted(
        (s for s in stats.published if s.application_id == application_id),
        key=lambda s: s.window_start,
    )
    topic_windows = [json.loads(encode_window_stats(s)) for s in on_topic]
    answer = json.loads(body) if status == 200 else {}
    answered = [window for window in answer.get("windows", []) if window["closed"]]
    check(
        answer.get("applicationId") == application_id and answered == topic_windows,
        "GET /stats/{applicationId} answers the closed windows of the stats topic",
        f"GET /stats/{application_id}: status {status}, {len(answered)} closed windows, the topic "
        f"has {len(topic_windows)}; body {body[:200]!r}",
    )


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
    stats: Stats,
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

    _print_stats(stats)

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


def _print_stats(stats: Stats) -> None:
    """Per application: its windows on the stats topic and their figures summed; late: the
    events applied for it that no window counted."""
    windowing = stats.windowing
    print(
        f"\nStatistics per application ({_span(windowing.size)} windows, "
        f"{_span(windowing.grace)} grace; sums over the windows on the stats topic)"
    )
    header = (
        "app", "windows", "created", "closed", "cancelled", "partRet",
        "revenue", "returned", "abandoned", "coupons", "events", "late",
    )  # fmt: skip
    by_application: dict[int, list[WindowStats]] = {}
    for published in stats.published:
        by_application.setdefault(published.application_id, []).append(published)

    def cells(label: str, windows: int, sums: Figures, late: int) -> list[str]:
        figures = [
            f"{value:.2f}" if isinstance(value, Decimal) else str(value)
            for value in _figures(sums).values()
        ]
        return [label, str(windows), *figures, str(late)]

    rows: list[list[str]] = [list(header)]
    total = Figures()
    for application_id, windows in sorted(by_application.items()):
        sums = Figures()
        for published in windows:
            sums.add(Figures(**_figures(published)))
        total.add(sums)
        late = stats.applied[application_id] - sums.events_applied
        rows.append(cells(str(application_id), len(windows), sums, late))
    rows.append(cells("total", len(stats.published), total, stats.late.total()))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        label, *numbers = row
        aligned = (n.rjust(width) for n, width in zip(numbers, widths[1:], strict=True))
        print(f"  {label:<{widths[0]}}  " + "  ".join(aligned))
    print("  (partRet: partially returned; money: revenueClosed, returnedValue, abandonedValue;")
    print("  late: applied after their window had closed on their partition, so in no window;")
    print(f"  {stats.ticks} idle ticks were sent)")


if __name__ == "__main__":
    sys.exit(main())
