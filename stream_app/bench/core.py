"""Throughput of the pure core on one CPU core: decode + apply + encode, no Kafka.

    python -m stream_app.bench.core [--events 100000] [--sessions N] [--seed 1]

Per record it does what the worker does around the core: decode the event, apply it, encode the
new state (msgpack), the transition and the snapshot (JSON), build and encode a dead-letter
record for a rejection, and settle profile claims (decide, apply the verdict, encode the
released snapshot). Two passes are timed: with states kept as objects between records, and with
states stored as bytes and decoded for every record, as the worker's table does. Generating the
records is not timed. Prints a human line per pass, then one JSON line with all the figures.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from stream_app.domain import (
    Applied,
    Rejected,
    RejectionSource,
    SessionState,
    Skipped,
    apply_event,
    apply_verdict,
    build_rejection,
    decide_claim,
    decode_event,
    decode_state,
    encode_json,
    encode_state,
    profile_key,
)
from stream_app.workload import generate_workload

Record = tuple[str | None, bytes]
_SOURCE = RejectionSource(topic="customer-session-events", partition=0, offset=0, key=None)
_NOW = datetime(2026, 11, 25, tzinfo=UTC)


class _Tables:
    """Session states (as objects or as bytes) and profile owners, as the worker keeps them."""

    def __init__(self, as_bytes: bool) -> None:
        self.as_bytes = as_bytes
        self.states: dict[str, SessionState | bytes] = {}
        self.owners: dict[str, str] = {}

    def load(self, integration_id: str) -> SessionState | None:
        stored = self.states.get(integration_id)
        if stored is None or isinstance(stored, SessionState):
            return stored
        return decode_state(stored)

    def store(self, integration_id: str, state: SessionState) -> int:
        """Keep the new state; it is encoded either way, as the worker must. Returns its size."""
        encoded = encode_state(state)
        self.states[integration_id] = encoded if self.as_bytes else state
        return len(encoded)


def process(tables: _Tables, key: str | None, raw: bytes) -> int:
    """Handle one input record the way the worker does, minus Kafka; returns the bytes written."""
    event = decode_event(raw)
    if isinstance(event, Rejected):
        return len(encode_json(build_rejection(event, raw, _SOURCE, _NOW)))
    # Outputs are counted, not kept: a method call per output would be the harness's own cost.
    match apply_event(tables.load(event.integration_id), event, key):
        # Nearly every record applies, so that case is tried first.
        case Applied(state=state, snapshot=snapshot, transition=transition, claim=claim):
            written = 0
            if transition is not None:
                written += len(encode_json(transition))
            if snapshot is not None:
                written += len(encode_json(snapshot))
            if claim is not None:
                # The profile side answers at once here; in the worker it is a topic round trip.
                owner_key = profile_key(claim.application_id, claim.profile_id)
                owner, verdict = decide_claim(tables.owners.get(owner_key), claim)
                tables.owners[owner_key] = owner
                state, released = apply_verdict(state, verdict)
                if released is not None:
                    written += len(encode_json(released))
            return written + tables.store(event.integration_id, state)
        case Rejected() as rejected:
            return len(encode_json(build_rejection(rejected, raw, _SOURCE, _NOW)))
        case Skipped():
            return 0


def timed_pass(records: Sequence[Record], as_bytes: bool) -> dict[str, float]:
    """Process every record once; returns wall and CPU seconds and events per second."""
    tables = _Tables(as_bytes)
    written = 0
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    for key, raw in records:
        written += process(tables, key, raw)
    elapsed = time.perf_counter() - started
    # CPU time too: on a busy machine it is the steadier of the two.
    cpu = time.process_time() - cpu_started
    return {
        "seconds": round(elapsed, 3),
        "events_per_second": round(len(records) / elapsed),
        "us_per_event": round(elapsed / len(records) * 1e6, 2),
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_second": round(len(records) / cpu),
        "output_mb": round(written / 1e6, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the core benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m stream_app.bench.core", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=None, help="default: events / 10")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sessions = args.sessions or max(1, args.events // 10)
    records = list(generate_workload(args.seed, sessions, args.events))
    in_memory = timed_pass(records, as_bytes=False)
    stored = timed_pass(records, as_bytes=True)
    for label, figures in (("in memory", in_memory), ("as bytes ", stored)):
        print(
            f"core, states {label}: {figures['events_per_second']:,} events/s"
            f" ({figures['us_per_event']} us/event;"
            f" {figures['events_per_cpu_second']:,} events per CPU second)"
        )
    summary = {
        "benchmark": "core",
        "events": len(records),
        "sessions": sessions,
        "seed": args.seed,
        "python": sys.version.split()[0],
        "states_in_memory": in_memory,
        "states_as_bytes": stored,
    }
    print(msgspec.json.encode(summary).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
