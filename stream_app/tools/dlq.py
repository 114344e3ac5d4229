"""`stream-app dlq`: summarise, tail and replay the dead-letter topic."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from stream_app.domain import Rejection, decode_rejection
from stream_app.settings import Settings
from stream_app.tools import load_settings
from stream_app.tools.kafka import (
    TopicNotFound,
    offsets_at,
    partitions_of,
    producer,
    read_range,
    reader,
)
from stream_app.tools.progress import Progress
from stream_app.worker.dead_letters import ATTEMPT_HEADER, REPLAY_HEADER

#: A dead letter whose record has failed this often is skipped unless --force (--max-failures).
MAX_FAILURES_DEFAULT = 3
#: Replayed records in flight before the replay waits for their acknowledgements.
MAX_PENDING_SENDS = 1000
#: How far before the oldest selected dead letter the input topic is searched for earlier
#: replays of it; a replay is always produced after its dead letter, give or take clock skew.
REPLAY_SEARCH_MARGIN = timedelta(hours=1)
#: Dead letters `tail` shows before following, by default.
TAIL_DEFAULT = 10
#: How long `tail -f` waits for new records between two polls, in milliseconds.
FOLLOW_POLL_MS = 1000

DESCRIPTION = """\
Inspect and re-drive the dead-letter topic (STREAM_APP_DLQ_TOPIC on STREAM_APP_BROKER).

  summary   counts by error code (with the oldest and newest time of each) and by source topic
  tail      one line per dead letter: time, code, key, source, dead-letter coordinates, message;
            the last 10 by default, -f to follow
  replay    send the original bytes, under their original key, of selected dead letters back
            to the input topic, where they go through every rule again

Times given to --since and --until are RFC 3339 (2026-11-25T10:00:00Z) or a duration before
now (30m, 2h, 7d); they select dead letters by the time the worker wrote them. Only committed
records are read. `stream-app dlq COMMAND --help` tells more.
"""

REPLAY_DESCRIPTION = f"""\
Re-publish the original record (its value bytes exactly as received and its original key;
no key when it had none) of each selected dead letter to the input topic
(STREAM_APP_INPUT_TOPIC), where the worker applies the rules to it again: a record rejected
because its session did not exist yet is applied once the session exists.

Select with --code, --key, --since/--until and --offsets (the dead-letter topic's own
PARTITION:OFFSET or PARTITION:FIRST-LAST, shown by `tail`); the options combine (a dead letter
must match all of them), and --all selects every dead letter when no other option is given.

Idempotent: each replayed record carries the header '{REPLAY_HEADER}' with its dead letter's
coordinates (topic:partition:offset). Before sending, replay reads those headers back from the
input topic (from an hour before the oldest selected dead letter, to allow for clock skew) and
skips every dead letter already replayed, so running the same replay twice sends nothing new;
--again sends them anyway. Two replays running at the same moment can both send a dead letter.
A replayed record that is rejected again becomes a new dead letter, with new coordinates.

Bounded re-drives: each replayed record also carries '{ATTEMPT_HEADER}' (1 for the first
replay of a record, 2 for the next, ...), and the worker copies both headers onto the dead
letter of a replayed record that is rejected again. A dead letter whose record has failed
--max-failures times (default {MAX_FAILURES_DEFAULT}: the first rejection and two replays) is
skipped unless --force. --rate N sends at most N records per second. The selection is streamed
(read twice, never held in memory).

--dry-run prints what would be sent (one line per dead letter) and sends nothing.
"""


class UsageError(ValueError):
    """An option the command cannot use; the message says which."""


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time with an offset, or a duration before now (30m, 2h, 7d)."""
    match = _DURATION.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is neither an RFC 3339 time nor a duration like 2h") from None
    if parsed.tzinfo is None:
        raise UsageError(f"{text!r} has no UTC offset")
    return parsed


def parse_offsets(text: str) -> tuple[int, int, int]:
    """PARTITION:OFFSET or PARTITION:FIRST-LAST as (partition, first, last), both inclusive."""
    match = re.fullmatch(r"(\d+):(\d+)(?:-(\d+))?", text.strip())
    if not match:
        raise UsageError(f"--offsets {text!r}: expected PARTITION:OFFSET or PARTITION:FIRST-LAST")
    partition, first = int(match.group(1)), int(match.group(2))
    last = int(match.group(3)) if match.group(3) else first
    if last < first:
        raise UsageError(f"--offsets {text!r}: the last offset is before the first")
    return partition, first, last


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic: where it sits, its key, and its decoded value."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    rejection: Rejection | None
    #: How many times its original record had been replayed when it failed (0: never).
    replays: int = 0

    @property
    def failures(self) -> int:
        """How many times its original record has been rejected: once, plus once per replay."""
        return 1 + self.replays

    @property
    def time(self) -> datetime:
        """When the worker wrote it (the record's timestamp)."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def code(self) -> str:
        """The error code, or `undecodable` when the value is not a Rejection."""
        return "undecodable" if self.rejection is None else self.rejection.error.code

    def coordinates(self, topic: str) -> str:
        """`topic:partition:offset`, the value of the replay header."""
        return f"{topic}:{self.partition}:{self.offset}"

    def original_value(self) -> bytes | None:
        """The rejected record's value bytes, exactly as received."""
        if self.rejection is None:
            return None
        if self.rejection.event_encoding == "base64":
            return base64.b64decode(self.rejection.event)
        return self.rejection.event.encode()

    def line(self) -> str:
        """One readable line: time, code, key, source, dead-letter coordinates, message.

        Control and other non-printable characters (terminal escapes, NUL, bidi overrides) are
        shown as escapes: a key or message can come from any producer.
        """
        key = "-" if self.key is None else visible(self.key.decode(errors="backslashreplace"))
        if self.rejection is None:
            return f"{_iso(self.time)}  undecodable  key={key}  dlq={self.partition}:{self.offset}"
        source = self.rejection.source
        return (
            f"{_iso(self.time)}  {visible(self.code)}  key={key}  "
            f"source={visible(source.topic)}:{source.partition}:{source.offset}  "
            f"dlq={self.partition}:{self.offset}  {visible(self.rejection.error.message)}"
        )


def visible(text: str) -> str:
    """`text` with every non-printable character written as a Python escape (\\x1b, \\u202e)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    """A consumed dead-letter record, decoded when it can be."""
    try:
        rejection: Rejection | None = decode_rejection(record.value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError):
        rejection = None
    replays = 0
    for name, value in record.headers or ():
        if name == ATTEMPT_HEADER and value.isdigit():
            replays = int(value)
    return DeadLetter(
        record.partition, record.offset, record.timestamp, record.key, rejection, replays
    )


@dataclass
class Selection:
    """Which dead letters a command looks at; every given criterion must hold."""

    since: datetime | None = None
    until: datetime | None = None
    codes: frozenset[str] = frozenset()
    keys: frozenset[bytes] = frozenset()
    offsets: list[tuple[int, int, int]] = field(default_factory=list)

    def matches(self, letter: DeadLetter) -> bool:
        """Whether `letter` is selected."""
        if self.since is not None and letter.time < self.since:
            return False
        if self.until is not None and letter.time >= self.until:
            return False
        if self.codes and letter.code not in self.codes:
            return False
        if self.keys and letter.key not in self.keys:
            return False
        return not self.offsets or any(
            p == letter.partition and first <= letter.offset <= last
            for p, first, last in self.offsets
        )

    @property
    def narrowed(self) -> bool:
        """Whether any criterion was given."""
        return bool(self.since or self.until or self.codes or self.keys or self.offsets)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


async def read_dead_letters(settings: Settings, selection: Selection) -> AsyncIterator[DeadLetter]:
    """The selected committed dead letters, partition by partition, up to the current end."""
    consumer = reader(settings, "dlq")
    await consumer.start()
    try:
        tps = await partitions_of(consumer, settings.dlq_topic)
        starts = await offsets_at(consumer, tps, _ms(selection.since))
        ends = dict(await consumer.end_offsets(tps))
        if selection.until is not None:
            until = await offsets_at(consumer, tps, _ms(selection.until))
            ends = {tp: min(ends[tp], until[tp]) for tp in tps}
        for p, _, _ in selection.offsets:
            if TopicPartition(settings.dlq_topic, p) not in starts:
                raise UsageError(f"--offsets: {settings.dlq_topic} has no partition {p}")
        async for batch in read_range(consumer, starts, ends):
            for record in batch:
                letter = dead_letter(record)
                if selection.matches(letter):
                    yield letter
    finally:
        await consumer.stop()


# -- summary ---------------------------------------------------------------------------------


@dataclass
class Summary:
    """Counts of dead letters by code (with oldest and newest time) and by source topic."""

    total: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    oldest: dict[str, datetime] = field(default_factory=dict)
    newest: dict[str, datetime] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)

    def add(self, letter: DeadLetter) -> None:
        """Count one dead letter."""
        code, moment = letter.code, letter.time
        self.total += 1
        self.codes[code] += 1
        self.oldest[code] = min(self.oldest.get(code, moment), moment)
        self.newest[code] = max(self.newest.get(code, moment), moment)
        source = "-" if letter.rejection is None else letter.rejection.source.topic
        self.sources[source] += 1

    def as_json(self, topic: str) -> dict[str, object]:
        """The summary as a JSON-ready dict."""
        return {
            "topic": topic,
            "total": self.total,
            "codes": {
                code: {
                    "count": n,
                    "oldest": _iso(self.oldest[code]),
                    "newest": _iso(self.newest[code]),
                }
                for code, n in sorted(self.codes.items())
            },
            "sources": dict(sorted(self.sources.items())),
        }

    def text(self, topic: str) -> str:
        """The summary as aligned text."""
        lines = [f"{self.total} dead letters on {topic}"]
        if not self.total:
            return lines[0]
        width = max(len("code"), *(len(c) for c in self.codes))
        lines.append("")
        lines.append(f"{'code':<{width}}  {'count':>7}  {'oldest':<24}  newest")
        for code, n in sorted(self.codes.items(), key=lambda item: (-item[1], item[0])):
            oldest, newest = _iso(self.oldest[code]), _iso(self.newest[code])
            lines.append(f"{code:<{width}}  {n:>7}  {oldest:<24}  {newest}")
        width = max(len("source topic"), *(len(s) for s in self.sources))
        lines.append("")
        lines.append(f"{'source topic':<{width}}  {'count':>7}")
        for source, n in sorted(self.sources.items()):
            lines.append(f"{source:<{width}}  {n:>7}")
        return "\n".join(lines)


async def summarise(settings: Settings, selection: Selection) -> Summary:
    """Count the selected dead letters."""
    summary = Summary()
    async for letter in read_dead_letters(settings, selection):
        summary.add(letter)
    return summary


# -- tail ------------------------------------------------------------------------------------


async def tail(
    settings: Settings,
    selection: Selection,
    last: int,
    follow: bool,
    emit: Callable[[str], None],
) -> None:
    """Emit the last `last` selected dead letters, oldest first; then, with `follow`, new ones."""
    consumer = reader(settings, "dlq-tail")
    await consumer.start()
    try:
        tps = await partitions_of(consumer, settings.dlq_topic)
        ends = dict(await consumer.end_offsets(tps))
        begins = await offsets_at(consumer, tps, _ms(selection.since))
        # Without filters the last N of each partition hold the last N overall; with filters,
        # the whole range has to be read.
        if not (selection.codes or selection.keys or selection.offsets):
            begins = {tp: max(begins[tp], ends[tp] - last) for tp in tps}
        recent: list[DeadLetter] = []
        async for batch in read_range(consumer, begins, ends):
            recent.extend(letter for r in batch if selection.matches(letter := dead_letter(r)))
            recent = sorted(recent, key=lambda d: (d.timestamp_ms, d.partition, d.offset))[-last:]
        for letter in recent if last else []:
            emit(letter.line())
        if not follow:
            return
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        while True:
            batch_map = await consumer.getmany(timeout_ms=FOLLOW_POLL_MS)
            for messages in batch_map.values():
                for record in messages:
                    letter = dead_letter(record)
                    if selection.matches(letter):
                        emit(letter.line())
    finally:
        await consumer.stop()


# -- replay ----------------------------------------------------------------------------------


@dataclass
class ReplayOutcome:
    """What a replay selected, skipped (already replayed, failed too often), and sent."""

    selected: int = 0
    already: int = 0
    undecodable: int = 0
    too_often: int = 0
    sent: int = 0
    planned: int = 0


async def replayed_coordinates(settings: Settings, since: datetime) -> set[str]:
    """Dead-letter coordinates named by replay headers on the input topic since `since`."""
    found: set[str] = set()
    consumer = reader(settings, "dlq-replay-check")
    await consumer.start()
    try:
        tps = await partitions_of(consumer, settings.input_topic)
        starts = await offsets_at(consumer, tps, _ms(since))
        ends = dict(await consumer.end_offsets(tps))
        async for batch in read_range(consumer, starts, ends):
            for record in batch:
                for name, value in record.headers or ():
                    if name == REPLAY_HEADER:
                        found.add(value.decode(errors="replace"))
    finally:
        await consumer.stop()
    return found


async def replay(
    settings: Settings,
    selection: Selection,
    *,
    again: bool,
    dry_run: bool,
    max_failures: int = MAX_FAILURES_DEFAULT,
    force: bool = False,
    rate: float | None = None,
    planned: Callable[[DeadLetter], None] | None = None,
    progress: Progress | None = None,
) -> ReplayOutcome:
    """Send the selected dead letters' original records back to the input topic, once each.

    Streams the selection (two reads of the dead-letter topic, none of it held in memory): the
    first finds the oldest selected dead letter, from which on the input topic is read for
    earlier replays (unless `again`); the second sends. A dead letter whose record has failed
    `max_failures` times (its replays carry an attempt count, which the worker copies onto a
    new dead letter) is skipped unless `force`. `rate` bounds the records sent per second.
    """
    outcome = ReplayOutcome()
    oldest: datetime | None = None
    async for letter in read_dead_letters(settings, selection):
        outcome.selected += 1
        if letter.rejection is not None and (oldest is None or letter.time < oldest):
            oldest = letter.time
    done: set[str] = set()
    if oldest is not None and not again:
        done = await replayed_coordinates(settings, oldest - REPLAY_SEARCH_MARGIN)
    client = None if dry_run else producer(settings, "dlq-replay")
    if client is not None:
        await client.start()
    pending: list[asyncio.Future[Any]] = []
    started = asyncio.get_running_loop().time()
    try:
        async for letter in read_dead_letters(settings, selection):
            if letter.rejection is None:
                outcome.undecodable += 1
                continue
            coordinates = letter.coordinates(settings.dlq_topic)
            if coordinates in done:
                outcome.already += 1
                continue
            if letter.failures >= max_failures and not force:
                outcome.too_often += 1
                continue
            outcome.planned += 1
            if planned is not None:
                planned(letter)
            if client is None:
                continue
            if rate is not None:
                due = started + outcome.planned / rate
                await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
            headers = [
                (REPLAY_HEADER, coordinates.encode()),
                (ATTEMPT_HEADER, str(letter.replays + 1).encode()),
            ]
            pending.append(
                await client.send(
                    settings.input_topic, letter.original_value(), key=letter.key, headers=headers
                )
            )
            if len(pending) >= MAX_PENDING_SENDS:
                outcome.sent += await _acknowledged(pending, progress)
        outcome.sent += await _acknowledged(pending, progress)
    finally:
        if client is not None:
            await client.stop()
    return outcome


async def _acknowledged(pending: list[asyncio.Future[Any]], progress: Progress | None) -> int:
    """Wait for the sends in flight; how many there were."""
    count = len(pending)
    for future in pending:
        await future
        if progress is not None:
            progress.advance()
    pending.clear()
    return count


# -- command line ----------------------------------------------------------------------------


def _add_time_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="TIME", help="dead letters written at or after TIME")
    parser.add_argument("--until", metavar="TIME", help="dead letters written before TIME")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--code", action="append", default=[], help="only this error code (repeatable)"
    )
    parser.add_argument(
        "--key", action="append", default=[], help="only dead letters with this key (repeatable)"
    )


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        since=None if args.since is None else parse_time(args.since),
        until=None if args.until is None else parse_time(args.until),
        codes=frozenset(getattr(args, "code", [])),
        keys=frozenset(key.encode() for key in getattr(args, "key", [])),
        offsets=[parse_offsets(o) for o in getattr(args, "offsets", [])],
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `stream-app dlq` and its three commands."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="stream-app dlq", description=DESCRIPTION,
                                     formatter_class=raw)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    summary = commands.add_parser(
        "summary",
        help="counts by code and by source topic",
        description="Count the dead letters (or those of a time range) by error code, with the "
        "oldest and newest time of each code, and by source topic.",
    )
    _add_time_options(summary)
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")

    tail_parser = commands.add_parser(
        "tail",
        help="one line per dead letter; -f follows",
        description="Print one line per dead letter: time, code, key, source "
        "(topic:partition:offset of the rejected record), dlq (the dead letter's own "
        "partition:offset, for `replay --offsets`) and message. The last N (by time) first; "
        "with -f, then every new one as it is written, until interrupted.",
    )
    tail_parser.add_argument("-n", "--lines", type=int, default=TAIL_DEFAULT,
                             help=f"how many to show first (default {TAIL_DEFAULT})")  # fmt: skip
    tail_parser.add_argument("-f", "--follow", action="store_true", help="keep printing new ones")
    _add_time_options(tail_parser)
    _add_filters(tail_parser)

    replay_parser = commands.add_parser(
        "replay",
        help="send selected dead letters' original records to the input topic again",
        description=REPLAY_DESCRIPTION,
        formatter_class=raw,
    )
    _add_time_options(replay_parser)
    _add_filters(replay_parser)
    replay_parser.add_argument(
        "--offsets",
        action="append",
        default=[],
        metavar="P:FIRST[-LAST]",
        help="dead letters at these offsets of the dead-letter topic's partition P (repeatable)",
    )
    replay_parser.add_argument(
        "--all", action="store_true", help="every dead letter (when no other selection is given)"
    )
    replay_parser.add_argument(
        "--again", action="store_true", help="also send dead letters replayed before"
    )
    replay_parser.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send nothing"
    )
    replay_parser.add_argument(
        "--max-failures",
        type=int,
        default=MAX_FAILURES_DEFAULT,
        metavar="N",
        help="skip dead letters whose record has failed N times already, counting its replays "
        f"(default {MAX_FAILURES_DEFAULT})",
    )
    replay_parser.add_argument(
        "--force", action="store_true", help="also send those that failed --max-failures times"
    )
    replay_parser.add_argument(
        "--rate", type=float, metavar="N", help="send at most N records per second"
    )
    return parser


def main(argv: list[str]) -> int:
    """Run `stream-app dlq`."""
    args = build_parser().parse_args(argv)
    settings = load_settings()
    try:
        selection = _selection(args)
        return asyncio.run(_run(settings, args, selection))
    except UsageError as exc:
        print(f"stream-app dlq: {exc}", file=sys.stderr)
        return 2
    except TopicNotFound as exc:
        print(f"stream-app dlq: topic {exc} does not exist on {settings.bootstrap}",
              file=sys.stderr)  # fmt: skip
        return 2


def _print(line: str) -> None:
    print(line, flush=True)


async def _run(settings: Settings, args: argparse.Namespace, selection: Selection) -> int:
    if args.command == "summary":
        summary = await summarise(settings, selection)
        if args.json:
            print(json.dumps(summary.as_json(settings.dlq_topic), indent=2))
        else:
            print(summary.text(settings.dlq_topic))
        return 0
    if args.command == "tail":
        await tail(settings, selection, max(args.lines, 0), args.follow, _print)
        return 0
    if not selection.narrowed and not args.all:
        raise UsageError("replay: select dead letters (--code, --key, --since, --until, "
                         "--offsets), or pass --all")  # fmt: skip
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be a positive number of records per second")

    def show(letter: DeadLetter) -> None:
        if args.dry_run:
            print(f"would replay {letter.line()}", flush=True)

    progress = Progress(f"replaying to {settings.input_topic}")
    try:
        outcome = await replay(
            settings,
            selection,
            again=args.again,
            dry_run=args.dry_run,
            max_failures=args.max_failures,
            force=args.force,
            rate=args.rate,
            planned=show,
            progress=progress,
        )
    finally:
        progress.finish()
    verb = "would replay" if args.dry_run else "replayed"
    count = outcome.planned if args.dry_run else outcome.sent
    parts = [
        f"{verb} {count} of {outcome.selected} selected dead letters to {settings.input_topic}"
    ]
    if outcome.already:
        parts.append(f"{outcome.already} already replayed (--again sends them again)")
    if outcome.too_often:
        parts.append(
            f"{outcome.too_often} failed {args.max_failures} times or more (--force sends them)"
        )
    if outcome.undecodable:
        parts.append(f"{outcome.undecodable} undecodable")
    print("; ".join(parts))
    return 0
