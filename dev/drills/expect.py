"""What the worker must have emitted, from the input topic replayed through the core.

The drills never trust the worker's own view. After a drill, the input topic is read back (so
the replay sees exactly the records, partitions and offsets the worker saw) and replayed
(dev/harness/replay.py). firstSession verdicts are not replayed: they depend on which claim
reached the profile owner first, which the contract leaves open. Everything else a snapshot
carries is fully determined, so `SessionHistory.states` holds the exact session each
updateCount must show, apart from `firstSession` (checked separately, see verify.py).

Key-less records are applied after the keyed ones; `Expectation.ambiguous` names the sessions
for which that order may differ from the worker's (none in the drills' workloads, where a
key-less record is the only record of its session).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dev.harness.replay import Coordinates, InputRecord, replay
from stream_app.domain import Applied, CustomerSession, Rejected, RejectionCode, encode_json


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


def expect(records: Iterable[InputRecord]) -> Expectation:
    """Replay input records (claims left pending) and collect what each session must show."""
    expectation = Expectation()
    keyed_sessions: set[str] = set()
    for step in replay(records):
        expectation.records += 1
        outcome = step.outcome
        if step.event is not None:
            if not step.rekeyed:
                keyed_sessions.add(step.event.integration_id)
            elif step.event.integration_id in keyed_sessions:
                expectation.ambiguous.add(step.event.integration_id)
        if isinstance(outcome, Rejected):
            rejection = ExpectedRejection(step.record, outcome.code)
            expectation.rejections[step.record.coordinates] = rejection
            continue
        if not isinstance(outcome, Applied):
            expectation.duplicates += 1
            continue
        assert step.event is not None
        integration_id = step.event.integration_id
        expectation.applied += 1
        history = expectation.sessions.get(integration_id)
        if history is None:
            history = expectation.sessions[integration_id] = SessionHistory(integration_id)
        session = outcome.stored.session
        history.states[session.update_count] = session
        if outcome.claim is not None:
            history.claim_counts.add(session.update_count)
            history.claimed_profiles.append(outcome.claim.profile_id)
        if outcome.transition is not None:
            history.transitions.append(encode_json(outcome.transition))
    return expectation
