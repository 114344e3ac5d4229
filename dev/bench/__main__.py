"""`make bench`: throughput, latency, state size, restore and pure-core speed in one run.

    python -m dev.bench [--events N] [--quick] [--rate R] [--duration S] ...

Every figure is measured against a baseline taken in the same run on the same machine (the raw
aiokafka loop in dev.bench.raw for speed, the logical key+value bytes for state size),
because the machine is shared and absolute figures drift. See docs/performance.md.
Writes bench-results/bench-<time>.json and .png (and the processes' logs) and prints a table.

The default (600,000 events over 60,000 sessions: enough for the restore goal's changelog of
500,000 records and the memory goal's 50,000 sessions) takes about 10 minutes on a 2-core
machine.
--quick is a smoke run of about 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import msgspec

from dev import ROOT
from dev.bench import core, retention, stats
from dev.bench.expect import expected_outputs
from dev.bench.report import Report, machine
from dev.bench.runs import (
    Throughput,
    event_key,
    measure_state,
    run_latency,
    run_restore,
    run_throughput,
    snapshot_key,
)
from dev.bench.targets import RawTarget, Target, WorkerTarget
from dev.harness.kafka import bootstrap_from_env, create_topic, delete_topics, produce_all
from dev.harness.metrics import WorkerMetrics
from dev.harness.workers import settings_for
from dev.harness.workload import generate_workload
from stream_app.settings import Settings

MODES = ("at_least_once", "exactly_once")
SECTIONS = ("core", "throughput", "stats", "state", "restore", "latency", "lifecycle")
DEFAULT_EVENTS = 600_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dev.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events", type=int, default=None, help=f"preloaded events (default {DEFAULT_EVENTS:,})"
    )
    parser.add_argument("--sessions", type=int, default=None, help="default: events / 10")
    parser.add_argument(
        "--quick", action="store_true", help="20k events, 15 s of latency (a smoke run)"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="latency: offered events/s")
    parser.add_argument(
        "--low-rate",
        type=float,
        default=None,
        help="latency: a second, unsaturated rate (default: half the slowest worker's"
        " measured throughput; 0 to skip)",
    )
    parser.add_argument("--duration", type=float, default=None, help="latency: seconds (60)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="latency: seconds not counted (5)"
    )
    parser.add_argument("--modes", default=",".join(MODES), help="processing guarantees to run")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections to run, from {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--lifecycle-sessions",
        type=int,
        default=None,
        help="flat-state runs: sessions that open and finish (default 1,000,000; quick 50,000)",
    )
    parser.add_argument(
        "--retention",
        default=None,
        help="the workers' STREAM_APP_RETENTION_* (e.g. forever; default: the worker's defaults)",
    )
    parser.add_argument(
        "--commit-interval-ms",
        type=int,
        default=None,
        help="the workers' STREAM_APP_COMMIT_INTERVAL_MS (default: the guarantee's default)",
    )
    parser.add_argument(
        "--compare-quix",
        metavar="PYTHON",
        default=None,
        help="also run the session job in Quix Streams (dev/bench/quix_job.py) with this Python,"
        " which must have quixstreams: throughput under both guarantees, latency at-least-once",
    )
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="broker host:port (default: $STREAM_APP_BROKER, as the worker reads it)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and state")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; write the JSON and the plot."""
    args = _parser().parse_args(argv)
    events = args.events or (20_000 if args.quick else DEFAULT_EVENTS)
    duration = args.duration or (15.0 if args.quick else 60.0)
    warmup = args.warmup if args.warmup is not None else (3.0 if args.quick else 5.0)
    modes = [m for m in args.modes.split(",") if m]
    sections = {s for s in args.only.split(",") if s}
    unknown = (set(modes) - set(MODES)) | (sections - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown mode or section: {sorted(unknown)}")
    bootstrap = bootstrap_from_env(
        None if args.bootstrap is None else {"STREAM_APP_BROKER": args.bootstrap}
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    out: Path = args.out
    work = out / f"work-{prefix}"
    logs = out / f"logs-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    report = Report(
        params={
            "started": stamp,
            "prefix": prefix,
            "events": events,
            "sessions": args.sessions or max(1, events // 10),
            "partitions": args.partitions,
            "seed": args.seed,
            "rate": args.rate,
            "duration": duration,
            "warmup": warmup,
            "modes": modes,
            "sections": sorted(sections),
            "bootstrap": bootstrap,
        },
        machine_before=machine(),
    )
    try:
        asyncio.run(_run(report, args, events, duration, warmup, modes, sections, work, logs))
    finally:
        if not args.keep:
            asyncio.run(delete_topics(bootstrap, f"{prefix}-"))
            shutil.rmtree(work, ignore_errors=True)
    report.machine_after = machine()
    json_path = out / f"bench-{stamp}.json"
    png_path = out / f"bench-{stamp}.png"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report.as_json()), indent=2))
    report.plot(png_path)
    print()
    print(report.table())
    print()
    print(f"wrote {json_path} and {png_path} (process logs in {logs})")
    return 0


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def _run(
    report: Report,
    args: argparse.Namespace,
    events: int,
    duration: float,
    warmup: float,
    modes: list[str],
    sections: set[str],
    work: Path,
    logs: Path,
) -> None:
    bootstrap: str = report.params["bootstrap"]
    prefix: str = report.params["prefix"]
    sessions: int = report.params["sessions"]
    partitions: int = args.partitions

    throughput_needed = sections & {"throughput", "state", "restore"}
    records: list[tuple[str | None, bytes]] = []
    expected = expected_outputs([])
    if throughput_needed or sections & {"core", "stats"}:
        _say(f"generating {events:,} events over ~{sessions:,} sessions (seed {args.seed})")
        records = list(generate_workload(args.seed, sessions, events))
        expected = expected_outputs(records)
        report.expected = {
            "applied": expected.applied,
            "rejected": expected.rejected,
            "duplicates": expected.duplicates,
            "sessions": expected.sessions,
            "claims": len(expected.claiming),
        }

    if "core" in sections:
        _say("pure core: decode + apply + encode, in this process")
        core_records = records[:100_000]
        report.core = {
            "events": len(core_records),
            "states_as_bytes": core.timed_pass(core_records, as_bytes=True),
            "states_in_memory": core.timed_pass(core_records, as_bytes=False),
            "msgspec_round_trip": core.timed_msgspec(core_records),
        }
        gc.collect()

    def worker_settings(name: str, mode: str, input_topic: str | None = None) -> Settings:
        settings = settings_for(
            bootstrap, f"{prefix}-{name}", work / name, partitions=partitions, guarantee=mode
        )
        if args.retention is not None:
            settings = retention.with_retention(settings, args.retention)
        if args.commit_interval_ms is not None:
            settings = replace(settings, commit_interval_ms=args.commit_interval_ms)
        if input_topic is None:
            return settings
        return replace(settings, input_topic=input_topic)

    if throughput_needed:
        input_topic = f"{prefix}-input"
        await create_topic(bootstrap, input_topic, partitions)
        _say(f"preloading {events:,} records into {input_topic}")
        started = time.monotonic()
        await produce_all(bootstrap, input_topic, records)
        _say(f"  preloaded in {time.monotonic() - started:.1f} s")

        async def raw_run(n: int) -> None:
            target = RawTarget(
                name=f"raw aiokafka loop #{n}",
                bootstrap=bootstrap,
                input_topic=input_topic,
                output_topic=f"{prefix}-raw{n}-out",
                group=f"{prefix}-raw{n}",
                log_path=logs / f"raw{n}.log",
            )
            report.raw.append(await _throughput(bootstrap, target, events, target.name))

        for number, mode in enumerate(modes, start=1):
            # The limit is measured next to each worker run (and once after): median of them.
            await raw_run(number)
            target = WorkerTarget(
                name=mode,
                settings=worker_settings(mode, mode, input_topic),
                log_path=logs / f"{mode}.log",
            )
            result = await _throughput(bootstrap, target, events, f"worker, {mode}")
            report.workers.append(result)
            _check_counts(report, mode, result.metrics, result.output_records, expected.applied)
            if "state" in sections:
                report.states[mode] = await measure_state(bootstrap, target)
            if "restore" in sections:
                _say(f"restore: worker, {mode}, empty data dir")
                report.restores[mode] = await run_restore(
                    bootstrap, target, work / f"{mode}-restore", result.healthy_after
                )
                r = report.restores[mode]
                _say(f"  {r.changelog_records:,} records in {r.seconds_to_healthy:.1f} s")
            shutil.rmtree(work / mode, ignore_errors=True)
        if args.compare_quix:
            for guarantee in QUIX_GUARANTEES:
                reference = _quix(
                    args.compare_quix, bootstrap, guarantee, "tp", input_topic, prefix, work, logs
                )
                label = f"reference job, {reference.name}"
                report.others.append(await _throughput(bootstrap, reference, events, label))
        await raw_run(len(modes) + 1)

    if "stats" in sections:
        topic = f"{prefix}-stats-input"
        await create_topic(bootstrap, topic, partitions)
        ordered = stats.in_time_order(records)
        _say(f"statistics cost: preloading {len(ordered):,} records in event-time order")
        await produce_all(bootstrap, topic, ordered)
        for mode in modes:
            for on in (True, False):
                name = f"{mode}, stats {'on' if on else 'off'}"
                settings = worker_settings(f"{mode}-stats-{on}", mode, topic)
                target = WorkerTarget(
                    name=name,
                    settings=replace(settings, stats=on),
                    log_path=logs / f"{mode}-stats-{'on' if on else 'off'}.log",
                )
                result = await _throughput(bootstrap, target, events, f"worker, {name}")
                report.stats_cost.append(result)
                if on and result.metrics is not None:
                    late = result.metrics.by_label(
                        "stream_app_stats_late_events_total", "where"
                    ).total()
                    report.checks.append(
                        f"{'ok' if late == 0 else 'MISMATCH'}  {name}: {late:,} late events"
                        " (in event-time order: none)"
                    )
                _check_counts(report, name, result.metrics, result.output_records, expected.applied)
                shutil.rmtree(work / f"{mode}-stats-{on}", ignore_errors=True)

    if "latency" in sections:
        rates = [args.rate]
        low = args.low_rate
        if low is None and report.workers:
            # Also where the worker is not saturated: half the slowest worker's throughput.
            low = round(min(w.events_per_second for w in report.workers) / 2, -1)
        if low and low < args.rate:
            rates.append(low)
        for rate in rates:
            await _latency_pass(
                report, rate, duration, warmup, modes, args.seed, logs, worker_settings,
                quix=None if not args.compare_quix else (args.compare_quix, work),
            )  # fmt: skip

    if "lifecycle" in sections:
        count = args.lifecycle_sessions or (50_000 if args.quick else 1_000_000)
        topic = f"{prefix}-lifecycle-input"
        _say(f"flat state: {count:,} sessions that open and finish, over 100 days of event time")
        events = await retention.preload(bootstrap, topic, partitions, count, args.seed)
        for name, on in (("on", True), ("off", False)):
            _say(f"flat state: retention {name}")
            state = await retention.run_state(
                bootstrap,
                worker_settings(f"life-{name}", "exactly_once", topic),
                events,
                on,
                logs / f"lifecycle-{name}.log",
                work,
            )
            report.lifecycle[name] = state
            _say(
                f"  {state.events_per_second:,.0f} events/s, {state.sessions_stored:,} sessions"
                f" stored, changelog {state.changelog_records_after_compaction:,} records after"
                f" compaction, restore {state.restore_seconds:.1f} s"
            )
            shutil.rmtree(work / f"life-{name}", ignore_errors=True)


#: The Quix Streams job's processing guarantees, in its own spelling.
QUIX_GUARANTEES = ("at-least-once", "exactly-once")


def _quix(
    python: str,
    bootstrap: str,
    guarantee: str,
    tag: str,
    input_topic: str,
    prefix: str,
    work: Path,
    logs: Path,
) -> RawTarget:
    """The Quix Streams session job (dev/bench/quix_job.py) as a target like the raw loop."""
    name = f"quix {guarantee}"
    return RawTarget(
        name=name,
        bootstrap=bootstrap,
        input_topic=input_topic,
        output_topic=f"{prefix}-{tag}-quix-{guarantee}-out",
        group=f"{prefix}-{tag}-quix-{guarantee}",
        log_path=logs / f"{tag}-quix-{guarantee}.log",
        command=[
            python, str(ROOT / "dev" / "bench" / "quix_job.py"), "--guarantee", guarantee,
            "--state-dir", str(work / f"{tag}-quix-{guarantee}"),
        ],
        keeps_input_timestamps=True,
    )  # fmt: skip


async def _throughput(bootstrap: str, target: Target, events: int, label: str) -> Throughput:
    """One throughput run, announced and summed up on the console."""
    _say(f"throughput: {label}")
    result = await run_throughput(bootstrap, target, events)
    _say(
        f"  {result.events_per_second:,.0f} events/s in {result.seconds:.1f} s,"
        f" {result.cpu_us_per_event or 0:,.0f} CPU us/event"
    )
    return result


async def _latency_pass(
    report: Report,
    rate: float,
    duration: float,
    warmup: float,
    modes: list[str],
    seed: int,
    logs: Path,
    worker_settings: Callable[[str, str, str | None], Settings],
    quix: tuple[str, Path] | None = None,
) -> None:
    """The raw loop, each worker and (with `quix`: its Python and a work directory) the Quix
    Streams job at-least-once, one after the other, at one offered rate."""
    bootstrap: str = report.params["bootstrap"]
    prefix: str = report.params["prefix"]
    partitions: int = report.params["partitions"]
    count = int(rate * duration)
    records = list(generate_workload(seed + 1, max(1, count // 10), count))
    expected = expected_outputs(records)
    event_ids = [
        event_key(raw) if keyed is not None else None
        for keyed, (_, raw) in zip(expected.snapshot_keys, records, strict=True)
    ]
    tag = f"{rate:.0f}"
    runs: list[tuple[str, str | None]] = [("raw", None), *[(m, m) for m in modes]]
    if quix is not None:
        runs.append(("quix", "quix"))
    for name, guarantee in runs:
        input_topic = f"{prefix}-lat{tag}-{name}-input"
        await create_topic(bootstrap, input_topic, partitions)
        _say(f"latency: {name}, {rate:,.0f}/s for {duration:.0f} s")
        if guarantee == "quix" and quix is not None:
            python, work = quix
            job = _quix(
                python, bootstrap, QUIX_GUARANTEES[0], f"lat{tag}", input_topic, prefix, work, logs
            )
            lat = await run_latency(
                bootstrap, job, records, event_ids, event_key, rate, duration, warmup
            )
        elif guarantee is None:
            raw_target = RawTarget(
                name="raw",
                bootstrap=bootstrap,
                input_topic=input_topic,
                output_topic=f"{prefix}-lat{tag}-raw-out",
                group=f"{prefix}-lat{tag}-raw",
                log_path=logs / f"latency{tag}-raw.log",
            )
            lat = await run_latency(
                bootstrap, raw_target, records, event_ids, event_key, rate, duration, warmup
            )
        else:
            worker = WorkerTarget(
                name=guarantee,
                settings=worker_settings(f"lat{tag}-{guarantee}", guarantee, input_topic),
                log_path=logs / f"latency{tag}-{guarantee}.log",
            )
            lat = await run_latency(
                bootstrap,
                worker,
                records,
                expected.snapshot_keys,
                snapshot_key,
                rate,
                duration,
                warmup,
                claiming=frozenset(expected.claiming),
            )
        report.latency.append(lat)
        p99 = lat.percentile(99)
        _say(
            f"  p99 {'-' if p99 is None else f'{p99 * 1000:.1f}'} ms,"
            f" {lat.seen:,}/{lat.expected:,} seen, {lat.achieved_rate:,.0f} outputs/s"
        )


def _check_counts(
    report: Report,
    mode: str,
    metrics: WorkerMetrics | None,
    outputs: dict[str, int],
    applied: int,
) -> None:
    """The run did the work: applied matches the pure core, snapshots on the topic match sends."""
    if metrics is None:
        report.checks.append(f"{mode}: no /metrics")
        return
    got = metrics.count("stream_app_events_applied_total")
    sent = metrics.count("stream_app_snapshots_sent_total")
    snapshots = next((n for topic, n in outputs.items() if topic.endswith("-sessions")), -1)
    ok = got == applied and snapshots == sent
    report.checks.append(
        f"{'ok' if ok else 'MISMATCH'}  {mode}: applied {got:,} (pure core {applied:,}),"
        f" snapshots sent {sent:,}, committed on the topic {snapshots:,}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
