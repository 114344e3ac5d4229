"""Input records replayed through the pure domain core, in the order one worker applies them.

`replay` is the one place that runs records through `decode_event`, `apply_event` and, when
asked, the firstSession round trip (`decide_claim`, `apply_verdict`) without Kafka. The drills
build the outputs a worker must have emitted from it (dev/drills/expect.py), the benchmark
what a workload yields and how fast the core goes (dev/bench/expect.py, dev/bench/core.py).

Order: records are taken per (topic, partition) in offset order, which is the order the
contract promises per session. Records without a key are re-keyed by the worker through an
internal topic, which puts them behind the keyed records of the same session: the replay
applies them after all keyed records (`Step.rekeyed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from dev.harness.kafka import raw_key
from stream_app.domain import (
    Applied,
    CustomerSession,
    Event,
    ProfileVerdict,
    Rejected,
    Skipped,
    StoredSession,
    apply_event,
    apply_verdict,
    decide_claim,
    decode_event,
    decode_key,
    profile_key,
)

#: (topic, partition, offset) of an input record: how a dead-letter record names its source.
Coordinates = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One record of the input topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    #: The broker's timestamp, epoch seconds (None: not known).
    timestamp: float | None = None

    @classmethod
    def from_consumer_record(cls, record: Any) -> InputRecord:
        """From an aiokafka ConsumerRecord."""
        value = record.value if record.value is not None else b""
        timestamp = record.timestamp / 1000
        return cls(record.topic, record.partition, record.offset, record.key, value, timestamp)

    @classmethod
    def numbered(
        cls, records: Iterable[tuple[str | bytes | None, bytes]], topic: str = "input"
    ) -> list[InputRecord]:
        """(key, value) pairs as if written in that order to one partition."""
        return [
            cls(topic, 0, offset, raw_key(key), value)
            for offset, (key, value) in enumerate(records)
        ]

    @property
    def coordinates(self) -> Coordinates:
        """Where the record is, as a dead-letter record's `source` names it."""
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Step:
    """What the core made of one input record."""

    record: InputRecord
    #: The decoded event; None when decoding rejected the record.
    event: Event | None
    outcome: Applied | Skipped | Rejected
    #: Whether the record had no key and was applied after the keyed records (re-keyed).
    rekeyed: bool = False
    #: With answer_claims, the verdict of the claim this record made, and the snapshot it
    #: released (the worker sends it when the verdict comes back).
    verdict: ProfileVerdict | None = None
    released: CustomerSession | None = None


@dataclass
class Core:
    """The state a replay keeps: every session, and each profile's first session."""

    sessions: MutableMapping[str, StoredSession] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)


def replay(
    records: Iterable[InputRecord], *, answer_claims: bool = False, core: Core | None = None
) -> Iterator[Step]:
    """Yield one Step per record, in the order the worker applies them.

    With `answer_claims`, a claim is decided at once (as if its verdict came back before the
    next record) and the session keeps the answer; without, claims stay pending, which holds
    the session's later snapshots back, as in a worker whose verdicts have not arrived yet.
    `core` carries the sessions between calls (default: a fresh, empty one); its `sessions`
    may be any mapping, e.g. one that stores them encoded.
    """
    core = core if core is not None else Core()
    keyless: list[tuple[InputRecord, Event]] = []
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        decoded = decode_event(record.value)
        if isinstance(decoded, Rejected):
            yield Step(record, None, decoded)
        elif record.key is None:
            keyless.append((record, decoded))
        else:
            yield _apply(core, record, decoded, decode_key(record.key), answer_claims, False)
    for record, decoded in keyless:
        # The worker re-keys the record by its integrationId before applying it.
        yield _apply(core, record, decoded, decoded.integration_id, answer_claims, True)


def _apply(
    core: Core,
    record: InputRecord,
    event: Event,
    key: str | None,
    answer_claims: bool,
    rekeyed: bool,
) -> Step:
    integration_id = event.integration_id
    outcome = apply_event(core.sessions.get(integration_id), event, key)
    if not isinstance(outcome, Applied):
        return Step(record, event, outcome, rekeyed)
    stored = outcome.stored
    claim = outcome.claim
    verdict = released = None
    if answer_claims and claim is not None:
        owner_key = profile_key(claim.application_id, claim.profile_id)
        owner, verdict = decide_claim(core.owners.get(owner_key), claim)
        core.owners[owner_key] = owner
        stored, released = apply_verdict(stored, verdict)
    core.sessions[integration_id] = stored
    return Step(record, event, outcome, rekeyed, verdict, released)
