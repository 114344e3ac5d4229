"""Throughput of the pure core on one CPU core: decode + apply + encode, no Kafka.

    python -m dev.bench.core [--events 100000] [--sessions N] [--seed 1]

Per record it does what the worker does around the core: decode the event, apply it, encode the
new state (msgpack), the transition and the snapshot (JSON), build and encode a dead-letter
record for a rejection, and settle profile claims (decide, apply the verdict, encode the
released snapshot). Two passes are timed: with states kept as objects between records, and with
states stored as bytes and decoded for every record, as the worker's table does. A third pass is
the baseline: msgspec's own decode of each event and encode of it back to JSON, nothing else.
Generating the records is not timed. Prints a human line per pass, then one JSON line with all
the figures.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from datetime import UTC, datetime

import msgspec

from dev.harness.replay import Core, InputRecord, replay
from dev.harness.workload import generate_workload
from stream_app.domain import (
    Applied,
    Rejected,
    RejectionSource,
    StoredSession,
    build_rejection,
    decode_stored,
    encode_json,
    encode_stored,
)
from stream_app.domain.events import Event

Record = tuple[str | None, bytes]
_SOURCE = RejectionSource(topic="customer-session-events", partition=0, offset=0, key=None)
_NOW = datetime(2026, 11, 25, tzinfo=UTC)


class _EncodedSessions(MutableMapping[str, StoredSession]):
    """Sessions kept as msgpack bytes and decoded on every read, as the worker's table does."""

    def __init__(self) -> None:
        self.encoded: dict[str, bytes] = {}
        self.bytes_written = 0

    def __getitem__(self, key: str) -> StoredSession:
        return decode_stored(self.encoded[key])

    def __setitem__(self, key: str, value: StoredSession) -> None:
        encoded = self.encoded[key] = encode_stored(value)
        self.bytes_written += len(encoded)

    def __delitem__(self, key: str) -> None:
        del self.encoded[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.encoded)

    def __len__(self) -> int:
        return len(self.encoded)


def process(records: Sequence[InputRecord], as_bytes: bool) -> int:
    """Handle records the way the worker does, minus Kafka; returns the output bytes written.

    The profile side answers claims at once; in the worker it is a topic round trip. Kept as
    objects, each new session is still encoded once (the worker must write it).
    """
    encoded = _EncodedSessions()
    core = Core(sessions=encoded if as_bytes else {})
    written = 0
    for step in replay(records, answer_claims=True, core=core):
        match step.outcome:
            # Nearly every record applies, so that case is tried first.
            case Applied(stored=stored, snapshot=snapshot, transition=transition):
                if transition is not None:
                    written += len(encode_json(transition))
                if snapshot is not None:
                    written += len(encode_json(snapshot))
                if step.released is not None:
                    written += len(encode_json(step.released))
                if not as_bytes:
                    written += len(encode_stored(stored))
            case Rejected() as rejected:
                raw = step.record.value
                written += len(encode_json(build_rejection(rejected, raw, _SOURCE, _NOW)))
    return written + encoded.bytes_written


_event_decoder = msgspec.json.Decoder(Event)
_json_encoder = msgspec.json.Encoder()


def msgspec_round_trip(records: Sequence[InputRecord]) -> int:
    """msgspec's own work on the same records, the core's baseline: decode, encode again.

    Each event is decoded into the project's event type and encoded back to JSON (a record
    that does not decode is skipped): the least any handling of these records costs in Python.
    """
    written = 0
    decode, encode = _event_decoder.decode, _json_encoder.encode
    for record in records:
        try:
            event = decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        written += len(encode(event))
    return written


def timed_msgspec(records: Sequence[Record]) -> dict[str, float]:
    """`msgspec_round_trip` timed like `timed_pass`."""
    return _timed(records, msgspec_round_trip)


def timed_pass(records: Sequence[Record], as_bytes: bool) -> dict[str, float]:
    """Process every record once; returns wall and CPU seconds and events per second."""
    return _timed(records, lambda inputs: process(inputs, as_bytes))


def _timed(
    records: Sequence[Record], run: Callable[[Sequence[InputRecord]], int]
) -> dict[str, float]:
    inputs = InputRecord.numbered(records)
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    written = run(inputs)
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
    parser = argparse.ArgumentParser(prog="python -m dev.bench.core", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=None, help="default: events / 10")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sessions = args.sessions or max(1, args.events // 10)
    records = list(generate_workload(args.seed, sessions, args.events))
    in_memory = timed_pass(records, as_bytes=False)
    stored = timed_pass(records, as_bytes=True)
    baseline = timed_msgspec(records)
    for label, figures in (
        ("in memory", in_memory),
        ("as bytes ", stored),
        ("msgspec decode + encode only", baseline),
    ):
        print(
            f"core, {label}: {figures['events_per_second']:,} events/s"
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
        "msgspec_round_trip": baseline,
    }
    print(msgspec.json.encode(summary).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
