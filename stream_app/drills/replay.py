"""What the worker must have emitted: the input topic replayed through the pure domain core.

The drills never trust the worker's own view. After a drill, the input topic is read back (so
the replay sees exactly the records, partitions and offsets the worker saw) and every record is
run through `decode_event` and `apply_event` in partition order, which is the order the
contract promises per session. firstSession verdicts are not replayed: they depend on which
claim reached the profile owner first, which the contract leaves open. Everything else a
snapshot carries is fully determined, so `SessionHistory.states` holds the exact session each
updateCount must show, apart from `firstSession` (checked separately, see verify.py).

Records without a key are re-keyed by the worker through an internal topic, which reorders them
relative to the keyed records of the same session. The replay applies them after all keyed
records; `Expectation.ambiguous` names the sessions for which that order may differ from the
worker's (none in the drills' workloads, where a key-less record is the only record of its
session).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stream_app.domain import (
    Applied,
    CustomerSession,
    Event,
    Rejected,
    RejectionCode,
    SessionState,
    Skipped,
    apply_event,
    decode_event,
    decode_key,
    encode_json,
)

#: (topic, partition, offset) of an input record: how a dead-letter record names its source.
Coordinates = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One record of the input topic, as read back from the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @classmethod
    def from_consumer_record(cls, record: Any) -> InputRecord:
        """From an aiokafka ConsumerRecord."""
        value = record.value if record.value is not None else b""
        return cls(record.topic, record.partition, record.offset, record.key, value)

    @property
    def coordinates(self) -> Coordinates:
        """Where the record is, as a dead-letter record's `source` names it."""
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class ExpectedRejection:
    """A record the worker must dead-letter exactly once."""

    record: InputRecord
    code: RejectionCode


@dataclass
class SessionHistory:
    """Everything one session must show on the output topics."""

    integration_id: str
    #: updateCount -> the session after the event with that count (firstSession unsettled).
    states: dict[int, CustomerSession] = field(default_factory=dict)
    #: updateCounts of the events that claimed a profile: a snapshot may be held from there on.
    claim_counts: set[int] = field(default_factory=set)
    #: The expected Transition records, encoded as the worker encodes them, in order.
    transitions: list[bytes] = field(default_factory=list)
    #: Profiles the session claimed, in order.
    claimed_profiles: list[str] = field(default_factory=list)

    @property
    def final_count(self) -> int:
        """The updateCount of the last applied event."""
        return max(self.states)

    @property
    def final(self) -> CustomerSession:
        """The session after its last applied event."""
        return self.states[self.final_count]

    @property
    def left_a_profile(self) -> bool:
        """Whether the session ever moved away from a profile it had claimed."""
        final_profile = self.final.profile_id
        return any(profile != final_profile for profile in self.claimed_profiles)


@dataclass
class Expectation:
    """The replay's verdict on a whole input topic."""

    sessions: dict[str, SessionHistory] = field(default_factory=dict)
    rejections: dict[Coordinates, ExpectedRejection] = field(default_factory=dict)
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    #: Sessions with both keyed and key-less records (their order in the worker is not fixed).
    ambiguous: set[str] = field(default_factory=set)

    @property
    def transitions(self) -> int:
        """How many Transition records the worker must emit."""
        return sum(len(history.transitions) for history in self.sessions.values())

    def summary(self) -> dict[str, int]:
        """Counts for the drill report."""
        return {
            "records": self.records,
            "sessions": len(self.sessions),
            "applied": self.applied,
            "duplicates": self.duplicates,
            "rejected": len(self.rejections),
            "transitions": self.transitions,
        }


def replay(records: Iterable[InputRecord]) -> Expectation:
    """Replay input records through the domain core, in the order the worker applies them."""
    expectation = Expectation()
    states: dict[str, SessionState] = {}
    keyed_sessions: set[str] = set()
    keyless: list[tuple[InputRecord, Event]] = []
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        expectation.records += 1
        decoded = decode_event(record.value)
        if isinstance(decoded, Rejected):
            expectation.rejections[record.coordinates] = ExpectedRejection(record, decoded.code)
            continue
        if record.key is None:
            keyless.append((record, decoded))
            continue
        keyed_sessions.add(decoded.integration_id)
        _apply(expectation, states, record, decoded, decode_key(record.key))
    for record, decoded in keyless:
        if decoded.integration_id in keyed_sessions:
            expectation.ambiguous.add(decoded.integration_id)
        # The worker re-keys the record by its integrationId before applying it.
        _apply(expectation, states, record, decoded, decoded.integration_id)
    return expectation


def _apply(
    expectation: Expectation,
    states: dict[str, SessionState],
    record: InputRecord,
    event: Event,
    key: str | None,
) -> None:
    integration_id = event.integration_id
    match apply_event(states.get(integration_id), event, key):
        case Skipped():
            expectation.duplicates += 1
        case Rejected() as rejected:
            expectation.rejections[record.coordinates] = ExpectedRejection(record, rejected.code)
        case Applied() as applied:
            expectation.applied += 1
            states[integration_id] = applied.state
            history = expectation.sessions.get(integration_id)
            if history is None:
                history = expectation.sessions[integration_id] = SessionHistory(integration_id)
            session = applied.state.session
            history.states[session.update_count] = session
            if applied.claim is not None:
                history.claim_counts.add(session.update_count)
                history.claimed_profiles.append(applied.claim.profile_id)
            if applied.transition is not None:
                history.transitions.append(encode_json(applied.transition))
