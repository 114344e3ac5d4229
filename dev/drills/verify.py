"""Checks of what a worker emitted (read with isolation level read_committed) against a replay.

Snapshots, per session (all records of a session share a key, hence a partition and an order):
  - updateCount strictly increasing: a repeat is a duplicate, a decrease is disorder;
  - a skipped updateCount only where the contract allows holding back: snapshots are held from
    the event that claims a profile until its firstSession verdict arrives, so a gap must start
    right at a claiming event (under at_least_once also later, once the session has claimed:
    a verdict applied again after a crash holds the snapshots again until it is re-applied);
  - every snapshot equals the replayed session with that updateCount, byte for byte, apart from
    firstSession; the last one carries the replay's final updateCount (nothing lost at the end);
  - firstSession: a session never shows two values for one profile, is always true while
    anonymous; at most one session is ever true for an (applicationId, profileId), and among
    final snapshots exactly one is (skipped for a profile some session left again, where the
    winner may legitimately never show it).
Transitions, per session: exactly the replay's records, in order (none lost, none repeated).
Dead letters: exactly one per rejected input record, with the replay's code, the original value
(text or base64) and key, and none for anything else.
"""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from dev.drills.expect import Expectation, SessionHistory
from dev.harness.replay import Coordinates
from stream_app.domain import decode_customer_session, decode_key, decode_rejection, encode_json

#: Examples kept per kind of problem (the counts are always complete).
EXAMPLES = 5


@dataclass
class Findings:
    """Problems by kind, with a few examples each, and the figures a drill reports."""

    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        """Count one problem of a kind; keep the first few descriptions."""
        self.problems[kind] += 1
        if len(self.examples[kind]) < EXAMPLES:
            self.examples[kind].append(example)

    @property
    def ok(self) -> bool:
        """No problem at all."""
        return not self.problems

    def lines(self) -> list[str]:
        """Human-readable problem lines: one per kind, then its examples."""
        out: list[str] = []
        for kind, count in sorted(self.problems.items()):
            out.append(f"{kind}: {count}")
            out.extend(f"    e.g. {example}" for example in self.examples[kind])
        return out


def check_outputs(
    expectation: Expectation,
    snapshots: Iterable[Any],
    transitions: Iterable[Any],
    dead_letters: Iterable[Any],
) -> Findings:
    """Check the three output topics (aiokafka ConsumerRecords) against the replay."""
    findings = Findings()
    check_snapshots(expectation, snapshots, findings)
    check_transitions(expectation, transitions, findings)
    check_dead_letters(expectation, dead_letters, findings)
    return findings


def _by_key(records: Iterable[Any]) -> dict[bytes | None, list[Any]]:
    grouped: dict[bytes | None, list[Any]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        grouped[record.key].append(record)
    return grouped


def check_snapshots(expectation: Expectation, records: Iterable[Any], findings: Findings) -> None:
    """Per-session snapshot checks; see the module docstring."""
    grouped = _by_key(records)
    findings.figures["snapshots"] = sum(len(rs) for rs in grouped.values())
    first_by_profile: dict[tuple[int, str], set[str]] = defaultdict(set)
    finals: dict[str, Any] = {}
    for key, session_records in grouped.items():
        integration_id = decode_key(key) or ""
        history = expectation.sessions.get(integration_id)
        if history is None:
            findings.add("snapshot for a session with no applied event", integration_id)
            continue
        final = _check_session_snapshots(history, session_records, findings, first_by_profile)
        if final is not None:
            finals[integration_id] = final
    for integration_id, history in expectation.sessions.items():
        if integration_id not in finals:
            findings.add(
                "session without any snapshot",
                f"{integration_id} (expected updateCount up to {history.final_count})",
            )
    _check_first_sessions(expectation, first_by_profile, finals, findings)


def _check_session_snapshots(
    history: SessionHistory,
    records: list[Any],
    findings: Findings,
    first_by_profile: dict[tuple[int, str], set[str]],
) -> Any:
    integration_id = history.integration_id
    previous = 0
    last = None
    seen_first: dict[str, bool] = {}
    for record in records:
        try:
            snapshot = decode_customer_session(record.value)
        except msgspec.DecodeError as exc:
            findings.add("undecodable snapshot", f"{integration_id}@{record.offset}: {exc}")
            continue
        count = snapshot.update_count
        where = f"{integration_id} p{record.partition}@{record.offset}"
        if count == previous:
            findings.add("repeated updateCount (duplicate snapshot)", f"{where}: {count} again")
        elif count < previous:
            findings.add("updateCount went back", f"{where}: {count} after {previous}")
        elif count > previous + 1 and previous + 1 not in history.claim_counts:
            earlier_claims = sorted(c for c in history.claim_counts if c <= previous)
            if earlier_claims:
                # The verdict that released an earlier snapshot may be applied again after a
                # crash (at_least_once): its state change was lost, its output was not, so the
                # session holds its snapshots once more until the verdict is re-applied.
                findings.add(
                    "snapshots held again until a repeated verdict",
                    f"{where}: {previous} -> {count}, profile claimed at {earlier_claims}",
                )
            else:
                findings.add(
                    "skipped updateCount (lost snapshot)",
                    f"{where}: {previous} -> {count}, no profile claim at {previous + 1}",
                )
        expected = history.states.get(count)
        if expected is None:
            findings.add("snapshot with an updateCount never applied", f"{where}: {count}")
        else:
            wanted = encode_json(
                msgspec.structs.replace(expected, first_session=snapshot.first_session)
            )
            if wanted != record.value:
                findings.add(
                    "snapshot differs from the replay",
                    f"{where} updateCount {count}: got {record.value[:300]!r}, "
                    f"want {wanted[:300]!r}",
                )
        profile = snapshot.profile_id
        if profile == "" and not snapshot.first_session:
            findings.add("anonymous session with firstSession false", where)
        if profile in seen_first and seen_first[profile] != snapshot.first_session:
            findings.add(
                "firstSession contradicted later",
                f"{where}: profile {profile!r} was {seen_first[profile]}, "
                f"now {snapshot.first_session}",
            )
        seen_first.setdefault(profile, snapshot.first_session)
        if profile and snapshot.first_session:
            first_by_profile[(snapshot.application_id, profile)].add(integration_id)
        previous = max(previous, count)
        last = snapshot
    if last is not None and last.update_count != history.final_count:
        findings.add(
            "final snapshot missing (lost)",
            f"{integration_id}: last updateCount {last.update_count}, "
            f"replay ends at {history.final_count}",
        )
    return last


def _check_first_sessions(
    expectation: Expectation,
    first_by_profile: dict[tuple[int, str], set[str]],
    finals: dict[str, Any],
    findings: Findings,
) -> None:
    for (application_id, profile), sessions in first_by_profile.items():
        if len(sessions) > 1:
            findings.add(
                "several first sessions for one profile",
                f"({application_id}, {profile!r}): {sorted(sessions)[:5]}",
            )
    left: set[tuple[int, str]] = set()
    for history in expectation.sessions.values():
        if history.left_a_profile:
            application_id = history.final.application_id
            left.update((application_id, profile) for profile in history.claimed_profiles)
    true_finals: Counter[tuple[int, str]] = Counter()
    profiles: set[tuple[int, str]] = set()
    for snapshot in finals.values():
        if snapshot.profile_id:
            profile_key = (snapshot.application_id, snapshot.profile_id)
            profiles.add(profile_key)
            true_finals[profile_key] += snapshot.first_session
    checked = profiles - left
    for profile_key in checked:
        if true_finals[profile_key] != 1:
            findings.add(
                "not exactly one first session among final snapshots",
                f"{profile_key}: {true_finals[profile_key]} true",
            )
    findings.figures["profiles_checked"] = len(checked)


def check_transitions(expectation: Expectation, records: Iterable[Any], findings: Findings) -> None:
    """Transitions per session: exactly the replay's, in order."""
    grouped = _by_key(records)
    findings.figures["transitions"] = sum(len(rs) for rs in grouped.values())
    for integration_id, history in expectation.sessions.items():
        got = [record.value for record in grouped.pop(integration_id.encode(), [])]
        want = history.transitions
        if got == want:
            continue
        missing = Counter(want) - Counter(got)
        extra = Counter(got) - Counter(want)
        if missing:
            findings.add("transition lost", f"{integration_id}: {sum(missing.values())} missing")
        if extra:
            findings.add(
                "transition duplicated or unexpected",
                f"{integration_id}: {sum(extra.values())} extra",
            )
        if not missing and not extra:
            findings.add("transitions out of order", integration_id)
    for key, rest in grouped.items():
        findings.add("transition for a session with no applied event", f"{key!r}: {len(rest)}")


def check_dead_letters(
    expectation: Expectation, records: Iterable[Any], findings: Findings
) -> None:
    """Exactly one dead-letter record per rejected input record, carrying its bytes."""
    seen: Counter[Coordinates] = Counter()
    total = 0
    for record in records:
        total += 1
        try:
            rejection = decode_rejection(record.value)
        except msgspec.DecodeError as exc:
            findings.add("undecodable dead-letter record", f"@{record.offset}: {exc}")
            continue
        source = rejection.source
        coordinates = (source.topic, source.partition, source.offset)
        seen[coordinates] += 1
        expected = expectation.rejections.get(coordinates)
        if expected is None:
            findings.add("dead letter for a record that is not rejected", str(coordinates))
            continue
        if seen[coordinates] > 1:
            continue
        if rejection.error.code != expected.code:
            findings.add(
                "dead letter with another code",
                f"{coordinates}: {rejection.error.code}, replay says {expected.code}",
            )
        if rejection.event_encoding == "base64":
            original = base64.b64decode(rejection.event)
        else:
            original = rejection.event.encode()
        if original != expected.record.value:
            findings.add("dead letter does not carry the original bytes", str(coordinates))
        if source.key != decode_key(expected.record.key):
            findings.add(
                "dead letter names another key",
                f"{coordinates}: {source.key!r} vs {expected.record.key!r}",
            )
    findings.figures["dead_letters"] = total
    for coordinates, count in seen.items():
        if count > 1 and coordinates in expectation.rejections:
            findings.add("dead letter duplicated", f"{coordinates}: {count} records")
    for coordinates in expectation.rejections.keys() - seen.keys():
        findings.add("dead letter missing", str(coordinates))
