"""`stream-app produce`: send events from a file or stdin to the input topic."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import msgspec

from stream_app.settings import Settings
from stream_app.tools import load_settings
from stream_app.tools.kafka import TopicNotFound, partitions_of, producer, reader
from stream_app.tools.progress import Progress

DESCRIPTION = """\
Send records to the input topic (STREAM_APP_INPUT_TOPIC on STREAM_APP_BROKER), one per line
of FILE, or of standard input when FILE is '-'.

A line is either a JSON event, sent as it is and keyed by its integrationId, or
'key<TAB>value': the value sent as it is under that key (an empty key sends a record without
a key). With --format auto (the default) a line is 'key<TAB>value' when it has a tab before
its first '{', and a JSON event otherwise. Blank lines are ignored.

Records are partitioned by key with Kafka's default (murmur2) partitioner, as the worker
requires, by an idempotent producer that waits for every replica. A line that is not a JSON
object with a string integrationId (in json mode) is reported with its line number and
skipped; with --strict the whole input is checked first and nothing is sent when a line is bad.

Progress goes to stderr (a bar on a terminal, a count every few seconds otherwise); the summary
goes to stdout. Exit status: 0 when every record was sent (bad lines skipped included), 1 when
--strict found a bad line, 2 on a Kafka or usage error.
"""

#: Records sent between two waits for their acknowledgements.
ACK_BATCH = 2000


class BadLine(ValueError):
    """A line that cannot be turned into a record."""


class _Keyed(msgspec.Struct, rename="camel"):
    integration_id: str


_key_decoder = msgspec.json.Decoder(_Keyed)


def parse_line(line: bytes, fmt: str) -> tuple[bytes | None, bytes]:
    """The (key, value) of one input line (without its line break); BadLine when it has none."""
    if fmt == "keyed" or (fmt == "auto" and _looks_keyed(line)):
        key, tab, value = line.partition(b"\t")
        if not tab:
            raise BadLine("expected 'key<TAB>value'")
        return (key or None), value
    try:
        integration_id = _key_decoder.decode(line).integration_id
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadLine(f"not a JSON event with a string integrationId: {exc}") from None
    if not integration_id:
        raise BadLine("integrationId is empty")
    return integration_id.encode(), line


def _looks_keyed(line: bytes) -> bool:
    tab = line.find(b"\t")
    brace = line.find(b"{")
    return tab >= 0 and (brace < 0 or tab < brace)


@dataclass
class Outcome:
    """What a run did: records sent, and the bad lines (line number, reason)."""

    sent: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    partitions: int = 0
    seconds: float = 0.0


def numbered_records(
    lines: Iterable[bytes], fmt: str, outcome: Outcome, report: BinaryIO | None = None
) -> Iterator[tuple[bytes | None, bytes]]:
    """The records of `lines`; each bad line is recorded in `outcome` (and reported) and skipped."""
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            yield parse_line(line, fmt)
        except BadLine as exc:
            outcome.bad.append((number, str(exc)))
            if report is not None:
                report.write(f"line {number}: {exc}\n".encode())
                report.flush()


async def send_records(
    settings: Settings,
    records: Iterable[tuple[bytes | None, bytes]],
    outcome: Outcome,
    progress: Progress,
) -> None:
    """Send every record to the input topic, waiting for the acknowledgements in batches."""
    topic = settings.input_topic
    consumer = reader(settings, "produce-metadata")
    await consumer.start()
    try:
        outcome.partitions = len(await partitions_of(consumer, topic))
    finally:
        await consumer.stop()
    client = producer(settings, "produce")
    await client.start()
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[object]] = []
        for key, value in records:
            pending.append(await client.send(topic, value, key=key))
            if len(pending) >= ACK_BATCH:
                await _acknowledged(pending, outcome, progress)
        await client.flush()
        await _acknowledged(pending, outcome, progress)
    finally:
        await client.stop()
        outcome.seconds = time.monotonic() - started


async def _acknowledged(
    pending: list[asyncio.Future[object]], outcome: Outcome, progress: Progress
) -> None:
    await asyncio.gather(*pending)
    outcome.sent += len(pending)
    progress.advance(len(pending))
    pending.clear()


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def main(argv: list[str]) -> int:
    """Run `stream-app produce`."""
    parser = argparse.ArgumentParser(
        prog="stream-app produce",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="file of records, one per line; - for stdin")
    parser.add_argument(
        "--format",
        choices=("auto", "json", "keyed"),
        default="auto",
        help="json: JSON events keyed by integrationId; keyed: key<TAB>value; auto (default)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="check every line first; send nothing if one is bad"
    )
    args = parser.parse_args(argv)
    settings = load_settings()

    source: BinaryIO
    total: int | None = None
    if args.file == "-":
        source = sys.stdin.buffer
    else:
        path = Path(args.file)
        try:
            source = path.open("rb")
            total = _count_lines(path) if path.is_file() else None
        except OSError as exc:
            print(f"stream-app produce: {exc}", file=sys.stderr)
            return 2
    outcome = Outcome()
    records: Iterable[tuple[bytes | None, bytes]]
    with source:
        report = sys.stderr.buffer
        if args.strict:
            records = list(numbered_records(source, args.format, outcome, report))
            if outcome.bad:
                print(f"{len(outcome.bad)} bad lines; nothing sent (--strict)", file=sys.stdout)
                return 1
            total = len(records)
        else:
            records = numbered_records(source, args.format, outcome, report)
        progress = Progress(f"sending to {settings.input_topic}", total)
        try:
            asyncio.run(send_records(settings, records, outcome, progress))
        except TopicNotFound:
            print(
                f"stream-app produce: topic {settings.input_topic!r} does not exist on "
                f"{settings.bootstrap} (a worker creates it on start)",
                file=sys.stderr,
            )
            return 2
        finally:
            progress.finish()
    rate = outcome.sent / outcome.seconds if outcome.seconds else 0.0
    skipped = f"{len(outcome.bad)} bad lines skipped" if outcome.bad else "no bad lines"
    print(
        f"sent {outcome.sent} records to {settings.input_topic} ({outcome.partitions} "
        f"partitions) in {outcome.seconds:.1f} s ({rate:,.0f}/s); {skipped}"
    )
    return 0
