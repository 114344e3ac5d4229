"""The benchmark's outputs: a printed table, a JSON file and a PNG plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dev.bench.retention import StateRun
from dev.bench.runs import Latency, Restore, StateSize, Throughput

#: The goals, checked against figures of the same run (docs/performance.md).
GOAL_ALO_RATIO = 0.5
GOAL_EOS_RATIO = 0.45
#: p99 produce -> visible output at 2,000 events/s offered, per guarantee: of the snapshots that
#: do not wait for a firstSession verdict (direct), and of all outputs (held ones included).
GOAL_P99_SECONDS = {"at_least_once": 0.050, "exactly_once": 0.150}
GOAL_P99_ALL_SECONDS = {"at_least_once": 0.050, "exactly_once": 0.300}
GOAL_P50_SECONDS = {"at_least_once": 0.015, "exactly_once": 0.060}
#: CPU time per event draining the preloaded input.
GOAL_CPU_US_PER_EVENT = 35.0
#: Restore net of start-up; stated for a changelog of >= 500,000 records.
GOAL_RESTORE_PER_SECOND = 50_000
GOAL_RESTORE_MIN_RECORDS = 500_000
GOAL_CHANGELOG_RECORDS_PER_SESSION = 2.0
GOAL_PEAK_RSS_MIB = 200
GOAL_PEAK_RSS_SESSIONS = 50_000
GOAL_BYTES_PER_SESSION = 2048
#: The pure core (states as bytes) against msgspec's own decode + encode of the same records.
GOAL_CORE_VS_MSGSPEC = 0.8


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory and load: what the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


@dataclass
class Report:
    """Everything one `python -m dev.bench` run measured."""

    params: dict[str, Any]
    machine_before: dict[str, Any]
    machine_after: dict[str, Any] = field(default_factory=dict)
    raw: list[Throughput] = field(default_factory=list)
    workers: list[Throughput] = field(default_factory=list)
    #: Reference jobs in other stream processors (--compare-quix), drained like the workers.
    others: list[Throughput] = field(default_factory=list)
    #: The statistics' cost (dev/bench/stats.py): per mode, a drain with stats on, then off.
    stats_cost: list[Throughput] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    states: dict[str, StateSize] = field(default_factory=dict)
    restores: dict[str, Restore] = field(default_factory=dict)
    #: The flat-state runs (dev/bench/retention.py): "on" and "off".
    lifecycle: dict[str, StateRun] = field(default_factory=dict)
    core: dict[str, Any] | None = None
    expected: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ baselines and ratios

    @property
    def raw_events_per_second(self) -> float | None:
        """The limit: median of the raw loop's runs (before, between and after the workers)."""
        if not self.raw:
            return None
        values = sorted(r.events_per_second for r in self.raw)
        return values[len(values) // 2]

    @property
    def raw_cpu_us_per_event(self) -> float | None:
        """The raw loop's CPU microseconds per event (median of its runs)."""
        values = sorted(r.cpu_us_per_event for r in self.raw if r.cpu_us_per_event is not None)
        return values[len(values) // 2] if values else None

    def cpu_ratio(self, cpu_us_per_event: float | None) -> float | None:
        """Events per CPU-second relative to the raw loop's (raw CPU/event over this one's)."""
        base = self.raw_cpu_us_per_event
        return None if not cpu_us_per_event or base is None else base / cpu_us_per_event

    def ratio(self, value: float | None) -> float | None:
        """value / the raw loop's events/s."""
        base = self.raw_events_per_second
        return None if value is None or not base else value / base

    def raw_latency(self, rate: float) -> Latency | None:
        """The raw loop's latency run at `rate`, the baseline for the workers' latencies."""
        return next((lat for lat in self.latency if lat.name == "raw" and lat.rate == rate), None)

    def goals(self) -> list[tuple[str, str, bool | None]]:
        """(goal, measured, met) for each goal (None: not measured)."""
        rows: list[tuple[str, str, bool | None]] = []
        for run, goal in (("at_least_once", GOAL_ALO_RATIO), ("exactly_once", GOAL_EOS_RATIO)):
            worker = next((w for w in self.workers if w.name == run), None)
            ratio = None if worker is None else self.ratio(worker.events_per_second)
            cpu = None if worker is None else self.cpu_ratio(worker.cpu_us_per_event)
            rows.append(
                (
                    f"throughput {run} >= {goal}x raw",
                    f"{_fmt(ratio, '{:.3f}x')} (per CPU-second: {_fmt(cpu, '{:.3f}x')})",
                    None if ratio is None else ratio >= goal,
                )
            )
        for worker in self.workers:
            if worker.name in GOAL_P99_SECONDS:
                cpu_us = worker.cpu_us_per_event
                rows.append(
                    (
                        f"CPU per event {worker.name} <= {GOAL_CPU_US_PER_EVENT:.0f} us",
                        _fmt(cpu_us, "{:.0f} us"),
                        None if cpu_us is None else cpu_us <= GOAL_CPU_US_PER_EVENT,
                    )
                )
        for lat in self.latency:
            if lat.name == "raw" or lat.rate != self.params.get("rate"):
                continue  # the goal is stated at the goal rate only
            for label, q, direct, goals in (
                ("p99 latency (direct)", 99, True, GOAL_P99_SECONDS),
                ("p99 latency (all, held included)", 99, False, GOAL_P99_ALL_SECONDS),
                ("p50 latency", 50, False, GOAL_P50_SECONDS),
            ):
                value = lat.percentile(q, direct=direct)
                goal_s = goals.get(lat.name, min(goals.values()))
                rows.append(
                    (
                        f"{label} {lat.name} <= {goal_s * 1000:.0f} ms at {lat.rate:.0f}/s",
                        ("> " if lat.is_lower_bound(q, direct) else "")
                        + _fmt(None if value is None else value * 1000, "{:.1f} ms"),
                        None if value is None else value <= goal_s,
                    )
                )
        for run, restore in self.restores.items():
            net = restore.net_records_per_second
            small = restore.changelog_records < GOAL_RESTORE_MIN_RECORDS
            rows.append(
                (
                    f"restore {run} >= {GOAL_RESTORE_PER_SECOND // 1000}k records/s net of"
                    " start-up",
                    _fmt(net, "{:,.0f}/s")
                    + f" ({restore.changelog_records:,} records"
                    + (
                        f"; the goal is stated for >= {GOAL_RESTORE_MIN_RECORDS:,})"
                        if small
                        else ")"
                    ),
                    None if net is None or small else net >= GOAL_RESTORE_PER_SECOND,
                )
            )
        for run, state in self.states.items():
            per_session = state.changelog_records / max(1, state.sessions)
            rows.append(
                (
                    f"changelog records/session {run} <= {GOAL_CHANGELOG_RECORDS_PER_SESSION:g}",
                    f"{per_session:.1f}",
                    per_session <= GOAL_CHANGELOG_RECORDS_PER_SESSION,
                )
            )
        for worker in self.workers:
            if worker.name not in GOAL_P99_SECONDS or worker.peak_rss_kib is None:
                continue
            sessions = int(self.params.get("sessions") or 0)
            mib = worker.peak_rss_kib / 1024
            rows.append(
                (
                    f"peak RSS {worker.name} <= {GOAL_PEAK_RSS_MIB} MiB"
                    f" ({GOAL_PEAK_RSS_SESSIONS:,} sessions)",
                    f"{mib:,.0f} MiB with {sessions:,} sessions",
                    None if sessions < GOAL_PEAK_RSS_SESSIONS else mib <= GOAL_PEAK_RSS_MIB,
                )
            )
        if self.core is not None and "msgspec_round_trip" in self.core:
            core_rate = self.core["states_as_bytes"]["events_per_second"]
            msgspec_rate = self.core["msgspec_round_trip"]["events_per_second"]
            ratio = core_rate / msgspec_rate
            rows.append(
                (
                    f"pure core >= {GOAL_CORE_VS_MSGSPEC}x msgspec decode + encode",
                    f"{ratio:.2f}x ({core_rate:,.0f} vs {msgspec_rate:,.0f} events/s)",
                    ratio >= GOAL_CORE_VS_MSGSPEC,
                )
            )
        for run, state in self.states.items():
            per = state.rocksdb_bytes / max(1, state.sessions)
            rows.append(
                (
                    f"RocksDB {run} <= {GOAL_BYTES_PER_SESSION} B/session",
                    f"{per:,.0f} B",
                    per <= GOAL_BYTES_PER_SESSION,
                )
            )
        return rows

    # ------------------------------------------------------------------------------ outputs

    def table(self) -> str:
        """The printed summary."""
        p = self.params
        m = self.machine_before
        out: list[str] = []
        out.append(
            f"stream_app benchmark  {p['started']}  events={p['events']:,}"
            f" sessions={p['sessions']:,} partitions={p['partitions']} seed={p['seed']}"
        )
        out.append(
            f"machine: nproc={m['nproc']}  cpu={m['cpu']}  mem={m['mem_gib']} GiB"
            f"  python {m['python']}  load(1m) before={m['load_avg_1m']}"
            f" after={self.machine_after.get('load_avg_1m', '?')}"
        )
        if self.expected:
            e = self.expected
            out.append(
                f"workload: {e['applied']:,} applied, {e['rejected']:,} rejected,"
                f" {e['duplicates']:,} duplicates, {e['sessions']:,} sessions (pure-core count)"
            )
        base = self.raw_events_per_second
        if self.raw or self.workers:
            out.append("")
            out.append(
                "THROUGHPUT  one process drains the preloaded input topic"
                " (first output record -> last offset committed)"
            )
            out.append(
                f"  {'run':<22}{'events/s':>10}{'vs raw':>8}{'CPU us/ev':>11}{'vs raw CPU':>12}"
                f"{'seconds':>9}{'startup s':>11}{'peak RSS MiB':>14}"
            )
            for run in [*self.raw, *self.workers, *self.others]:
                label = run.name
                out.append(
                    f"  {label:<22}{run.events_per_second:>10,.0f}"
                    f"{_fmt(self.ratio(run.events_per_second), '{:.3f}x'):>8}"
                    f"{_fmt(run.cpu_us_per_event, '{:,.0f}'):>11}"
                    f"{_fmt(self.cpu_ratio(run.cpu_us_per_event), '{:.3f}x'):>12}"
                    f"{run.seconds:>9.1f}{run.startup_seconds:>11.1f}"
                    f"{_fmt(_mib(run.peak_rss_kib), '{:.0f}'):>14}"
                )
            if base is not None:
                out.append(
                    f"  {'raw baseline (median)':<22}{base:>10,.0f}{'1.000x':>8}"
                    f"{_fmt(self.raw_cpu_us_per_event, '{:,.0f}'):>11}{'1.000x':>12}"
                )
        if self.stats_cost:
            out.append("")
            out.append(
                "STATISTICS COST  the same drain, records in event-time order, STREAM_APP_STATS"
                " on and off"
            )
            out.append(f"  {'run':<34}{'events/s':>10}{'CPU us/ev':>11}{'CPU on/off':>12}")
            runs = {run.name: run for run in self.stats_cost}
            for run in self.stats_cost:
                off = runs.get(run.name.replace("stats on", "stats off"))
                cost = None
                if run.name.endswith("stats on") and off is not None:
                    on_cpu, off_cpu = run.cpu_us_per_event, off.cpu_us_per_event
                    cost = None if not on_cpu or not off_cpu else on_cpu / off_cpu
                out.append(
                    f"  {run.name:<34}{run.events_per_second:>10,.0f}"
                    f"{_fmt(run.cpu_us_per_event, '{:,.1f}'):>11}{_fmt(cost, '{:.3f}x'):>12}"
                )
        if self.latency:
            lat0 = self.latency[0]
            out.append("")
            out.append(
                f"LATENCY  produce -> output visible to a read_committed consumer, fixed offered"
                f" rate for {lat0.duration:.0f} s, first {lat0.warmup:.0f} s excluded"
            )
            out.append(
                f"  {'run':<16}{'rate/s':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
                f"{'p99 vs raw':>11}{'direct p99':>11}{'seen/expected':>16}{'out/s':>7}"
            )
            for lat in self.latency:
                raw = self.raw_latency(lat.rate)
                raw_p99 = None if raw is None else raw.percentile(99)
                p99 = lat.percentile(99)
                vs = None if p99 is None or not raw_p99 else p99 / raw_p99
                bound = ">" if lat.is_lower_bound(99) else ""
                out.append(
                    f"  {lat.name:<16}{lat.rate:>7,.0f}{_pct(lat, 50):>9}{_pct(lat, 95):>9}"
                    f"{_pct(lat, 99):>9}{_pct(lat, 100):>9}"
                    f"{bound + _fmt(vs, '{:.1f}x'):>11}{_pct(lat, 99, direct=True):>11}"
                    f"{f'{lat.seen:,}/{lat.expected - lat.superseded:,}':>16}"
                    f"{lat.achieved_rate:>7,.0f}"
                )
            out.append(
                "  (>: never seen within the run, waited that long; seen/expected leaves out"
                " snapshots held for a verdict and then replaced)"
            )
            staged = [lat for lat in self.latency if lat.stages]
            if staged:
                out.append("")
                out.append(
                    "STAGES  where a record's time goes in the worker (stream_app_stage_seconds),"
                    " then to the reader; p50 / p99 ms"
                )
                names = list(staged[0].stages)
                out.append(f"  {'run':<16}{'rate/s':>7}" + "".join(f"{n:>15}" for n in names))
                for lat in staged:
                    cells = "".join(
                        f"{_ms(lat.stages[n][0]) + ' / ' + _ms(lat.stages[n][1]):>15}"
                        for n in names
                    )
                    out.append(f"  {lat.name:<16}{lat.rate:>7,.0f}{cells}")
                out.append(
                    "  (fetch: producer timestamp -> batch handed over by the consumer; queue: ->"
                    " the agent takes it; lock: waiting for a commit; apply: the core; write:"
                    " RocksDB + handed to the producer; deliver: -> acknowledged (at_least_once)"
                    " or committed (exactly_once); commit: how long one commit took (not a record's"
                    " stage); visible: output timestamp -> seen by a read_committed reader)"
                )
        if self.states:
            out.append("")
            out.append("STATE  sessions table after the throughput run (worker stopped)")
            out.append(
                f"  {'run':<16}{'sessions':>9}{'RocksDB B/s':>12}{'SST B/s':>9}"
                f"{'key+value B/s':>15}{'disk/logical':>14}{'changelog B/s':>15}"
                f"{'records/session':>17}"
            )
            for name, st in self.states.items():
                n = max(1, st.sessions)
                changelog = None if st.changelog_bytes is None else st.changelog_bytes / n
                out.append(
                    f"  {name:<16}{st.sessions:>9,}{st.rocksdb_bytes / n:>12,.0f}"
                    f"{st.rocksdb_sst_bytes / n:>9,.0f}{st.logical_bytes / n:>15,.0f}"
                    f"{st.rocksdb_bytes / max(1, st.logical_bytes):>14.2f}"
                    f"{_fmt(changelog, '{:,.0f}'):>15}{st.changelog_records / n:>17.1f}"
                )
        if self.restores:
            out.append("")
            out.append(
                "RESTORE  same worker, empty data dir: spawn -> GET /health 200"
                " (net: minus a start with nothing to restore)"
            )
            out.append(
                f"  {'run':<16}{'records':>10}{'seconds':>9}{'records/s':>11}{'vs raw':>8}"
                f"{'empty start s':>15}{'net records/s':>15}"
            )
            for name, r in self.restores.items():
                out.append(
                    f"  {name:<16}{r.changelog_records:>10,}{r.seconds_to_healthy:>9.1f}"
                    f"{r.records_per_second:>11,.0f}"
                    f"{_fmt(self.ratio(r.records_per_second), '{:.2f}x'):>8}"
                    f"{_fmt(r.baseline_seconds_to_healthy, '{:.1f}'):>15}"
                    f"{_fmt(r.net_records_per_second, '{:,.0f}'):>15}"
                )
        if self.lifecycle:
            out.extend(self._lifecycle_table())
        if self.core is not None:
            c = self.core
            out.append("")
            out.append("CORE  decode + apply + encode on one core, no Kafka (dev.bench.core)")
            for label, key in (
                ("states as bytes", "states_as_bytes"),
                ("in memory", "states_in_memory"),
                ("msgspec only", "msgspec_round_trip"),
            ):
                if key in c:
                    rate = c[key]["events_per_second"]
                    cpu_us = (
                        1e6 / c[key]["events_per_cpu_second"]
                        if c[key].get("events_per_cpu_second")
                        else None
                    )
                    out.append(
                        f"  {label:<18}{rate:>10,.0f} events/s"
                        f"  {c[key]['us_per_event']:>6.1f} us/event"
                        f"  {_fmt(self.ratio(rate), '{:.2f}x'):>7} raw"
                        f"  {_fmt(cpu_us, '{:.1f}'):>6} CPU us/event"
                        f"  {_fmt(self.cpu_ratio(cpu_us), '{:.2f}x'):>7} raw per CPU-second"
                    )
        goals = self.goals()
        if goals:
            out.append("")
            out.append("GOALS")
            for goal, measured, met in goals:
                verdict = "n/a" if met is None else ("MET" if met else "MISSED")
                out.append(f"  {verdict:<7} {goal:<52} {measured}")
        if self.checks:
            out.append("")
            out.append("CHECKS")
            out.extend(f"  {line}" for line in self.checks)
        return "\n".join(out)

    def _lifecycle_table(self) -> list[str]:
        out = ["", "FLAT STATE  sessions that open and finish over 100 days of event time, "
                   "retention 2d (on) vs forever (off); exactly_once"]  # fmt: skip
        out.append(
            f"  {'retention':<10}{'events':>10}{'events/s':>9}{'CPU us/ev':>10}"
            f"{'stored':>10}{'RocksDB MiB':>12}{'changelog written':>18}{'index':>11}"
            f"{'compacted':>10}"
            f"{'tombstones':>11}{'MiB':>7}{'restore s':>10}{'restored':>10}"
        )
        for name, run in self.lifecycle.items():
            compacted = run.changelog_bytes_after_compaction
            out.append(
                f"  {name:<10}{run.events:>10,}{run.events_per_second:>9,.0f}"
                f"{_fmt(run.cpu_us_per_event, '{:.1f}'):>10}{run.sessions_stored:>10,}"
                f"{run.rocksdb_bytes / 2**20:>12.1f}{run.changelog_records_written:>18,}"
                f"{run.index_records_written:>11,}"
                f"{run.changelog_records_after_compaction:>10,}"
                f"{run.changelog_tombstones_after_compaction:>11,}"
                f"{_fmt(None if compacted is None else compacted / 2**20, '{:.1f}'):>7}"
                f"{run.restore_seconds:>10.1f}{run.sessions_restored:>10,}"
            )
        for name, run in self.lifecycle.items():
            every = max(1, len(run.samples) // 8)
            growth = ", ".join(
                f"{done:.0%}: {mib / 2**20:.0f} MiB" + (f" / {stored:,}" if stored else "")
                for done, stored, mib in run.samples[::every]
            )
            out.append(f"  {name} while draining (input done: RocksDB, sessions swept): {growth}")
        on = self.lifecycle.get("on")
        if on is not None:
            m = on.metrics
            out.append(
                f"  on: expired {m.get('stream_app_sessions_expired_total', 0):,.0f}, "
                f"oldest session {m.get('stream_app_oldest_session_age_seconds', 0) / 86400:.1f}"
                f" days (event time); profiles kept: {on.profiles_stored:,}, "
                f"{on.profiles_logical_bytes / max(1, on.profiles_stored):.0f} B key+value and "
                f"{on.profiles_rocksdb_bytes / max(1, on.profiles_stored):.0f} B on disk each"
            )
        return out

    def as_json(self) -> dict[str, Any]:
        """Every figure, for bench-results/*.json."""

        def throughput(run: Throughput) -> dict[str, Any]:
            return {
                "events": run.events,
                "events_per_second": round(run.events_per_second, 1),
                "vs_raw": _round(self.ratio(run.events_per_second), 3),
                "cpu_seconds": _round(run.cpu_seconds, 3),
                "cpu_us_per_event": _round(run.cpu_us_per_event, 1),
                "vs_raw_cpu": _round(self.cpu_ratio(run.cpu_us_per_event), 3),
                "seconds": round(run.seconds, 3),
                "startup_seconds": round(run.startup_seconds, 3),
                "healthy_after_seconds": _round(run.healthy_after, 3),
                "peak_rss_kib": run.peak_rss_kib,
                "metrics": None if run.metrics is None else run.metrics.flat(),
                "output_records": run.output_records,
                "progress": [(round(t, 3), n) for t, n in run.progress],
            }

        def latency(lat: Latency) -> dict[str, Any]:
            return {
                "rate": lat.rate,
                "duration": lat.duration,
                "warmup": lat.warmup,
                "offered": lat.offered,
                "expected": lat.expected,
                "seen": lat.seen,
                "seen_after_verdict": lat.seen_after_verdict,
                "superseded": lat.superseded,
                "missing": lat.missing,
                "p99_is_lower_bound": lat.is_lower_bound(99),
                "achieved_rate": round(lat.achieved_rate, 1),
                "peak_rss_kib": lat.peak_rss_kib,
                "stages_ms": {
                    stage: {"p50": _round(_scale(p50), 2), "p99": _round(_scale(p99), 2)}
                    for stage, (p50, p99) in lat.stages.items()
                },
                "ms": {
                    f"p{q}": _round(_scale(lat.percentile(q)), 2) for q in (50, 90, 95, 99, 100)
                },
                # (seconds since the first produce, latency ms), at most ~5000 points.
                "series": [
                    (round(t, 3), round(v * 1000, 2))
                    for t, v in lat.series[:: max(1, len(lat.series) // 5000)]
                ],
                "direct_ms": {
                    f"p{q}": _round(_scale(lat.percentile(q, direct=True)), 2) for q in (50, 95, 99)
                },
            }

        return {
            "params": self.params,
            "machine": {"before": self.machine_before, "after": self.machine_after},
            "expected": self.expected,
            "throughput": {
                "raw_baseline_events_per_second": _round(self.raw_events_per_second, 1),
                "raw_baseline_cpu_us_per_event": _round(self.raw_cpu_us_per_event, 1),
                "raw": [throughput(r) for r in self.raw],
                "workers": {w.name: throughput(w) for w in self.workers},
                "others": {o.name: throughput(o) for o in self.others},
                "stats_cost": {s.name: throughput(s) for s in self.stats_cost},
            },
            "latency": [{"name": lat.name, **latency(lat)} for lat in self.latency],
            "state": {
                run: {
                    "sessions": st.sessions,
                    "rocksdb_bytes": st.rocksdb_bytes,
                    "rocksdb_sst_bytes": st.rocksdb_sst_bytes,
                    "logical_bytes": st.logical_bytes,
                    "changelog_bytes": st.changelog_bytes,
                    "changelog_records": st.changelog_records,
                    "rocksdb_bytes_per_session": round(st.rocksdb_bytes / max(1, st.sessions)),
                }
                for run, st in self.states.items()
            },
            "restore": {
                run: {
                    "changelog_records": r.changelog_records,
                    "seconds_to_healthy": round(r.seconds_to_healthy, 3),
                    "baseline_seconds_to_healthy": _round(r.baseline_seconds_to_healthy, 3),
                    "records_per_second": round(r.records_per_second, 1),
                    "net_records_per_second": _round(r.net_records_per_second, 1),
                    "vs_raw": _round(self.ratio(r.records_per_second), 3),
                    "sessions_restored": r.sessions_restored,
                }
                for run, r in self.restores.items()
            },
            "lifecycle": {run: state.as_json() for run, state in self.lifecycle.items()},
            "core": self.core,
            "goals": [
                {"goal": goal, "measured": measured, "met": met}
                for goal, measured, met in self.goals()
            ],
            "checks": self.checks,
        }

    def plot(self, path: Path) -> None:
        """Throughput over time (per 1 s window) and latency over time, one line per run."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
        ax = axes[0]
        for run in [*self.raw, *self.workers, *self.others]:
            times, rates = _rates(run.progress)
            ax.plot(times, rates, label=f"{run.name} ({run.events_per_second:,.0f}/s)")
        ax.set_yscale("symlog", linthresh=100)
        ax.set_title("Throughput: input records committed per second (1 s windows, log scale)")
        ax.set_xlabel("seconds since the first output record")
        ax.set_ylabel("events/s")
        ax.grid(alpha=0.3)
        ax.legend()
        ax = axes[1]
        for lat in self.latency:
            if not lat.series:
                continue
            xs, ys = _rolling_p99([t for t, _ in lat.series], [v * 1000 for _, v in lat.series])
            p99 = lat.percentile(99)
            label = f"{lat.name} @ {lat.rate:,.0f}/s (p99 {_ms(p99)} ms)"
            ax.plot(xs, ys, label=label)
        ax.set_yscale("log")
        ax.set_title("Latency: produce -> visible, p99 per 1 s of produce time")
        ax.set_xlabel("seconds since the first produced record")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3, which="both")
        if self.latency:
            ax.legend()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _rates(progress: Sequence[tuple[float, int]]) -> tuple[list[float], list[float]]:
    times: list[float] = []
    rates: list[float] = []
    points = [(t, n) for t, n in progress if t >= -1]
    if len(points) < 2:
        return times, rates
    j = 0
    for i in range(1, len(points)):
        t, n = points[i]
        while points[j][0] < t - 1.0:
            j += 1
        t0, n0 = points[j]
        if t > t0:
            times.append(t)
            rates.append((n - n0) / (t - t0))
    return times, rates


def _rolling_p99(times: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    buckets: dict[int, list[float]] = {}
    for t, v in zip(times, values, strict=True):
        buckets.setdefault(int(t), []).append(v)
    xs: list[float] = []
    ys: list[float] = []
    for second in sorted(buckets):
        vals = sorted(buckets[second])
        xs.append(second + 0.5)
        ys.append(vals[max(0, int(len(vals) * 0.99) - 1)])
    return xs, ys


def _pct(lat: Latency, q: float, direct: bool = False) -> str:
    value = lat.percentile(q, direct)
    if value is None:
        return "-"
    return (">" if lat.is_lower_bound(q, direct) else "") + f"{value * 1000:.1f}"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def _scale(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
