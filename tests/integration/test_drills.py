"""The failure drills, small: kill -9, state wiped, poison flood (docs/drills.md).

Each runs real `stream-app worker` processes on the broker and checks every output record
against a replay of the input through the domain core (dev/drills/verify.py). The full
drills, with the failover and broker-restart ones, are `make drill`. The first tests check that
those checks catch what they claim to, on outputs built from the replay and then damaged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from dev.drills.__main__ import QUICK, WORKER_ENV, render
from dev.drills.drill import DrillOptions
from dev.drills.expect import Expectation, expect
from dev.drills.expiry import expiry, expiry_at_least_once
from dev.drills.scenarios import (
    REPEATS,
    DrillResult,
    chaos,
    chaos_at_least_once,
    kill9,
    kill9_at_least_once,
    poison_flood,
    state_wiped,
)
from dev.drills.verify import check_outputs
from dev.harness.replay import InputRecord
from dev.harness.workload import generate_workload
from stream_app.domain import (
    RejectionSource,
    build_rejection,
    decode_event,
    decode_key,
    encode_json,
)
from stream_app.domain.outcomes import Rejected

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class _Record:
    """The fields of an aiokafka ConsumerRecord that the checks read."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


def _perfect_outputs(expectation: Expectation) -> tuple[list[_Record], ...]:
    """What a correct worker emits for the replay: every snapshot, transition, dead letter."""
    owners: dict[tuple[int, str], str] = {}
    snapshots, transitions, dead_letters = [], [], []
    for integration_id, history in sorted(expectation.sessions.items()):
        key = integration_id.encode()
        for count in sorted(history.states):
            session = history.states[count]
            first = True
            if session.profile_id:
                owner = owners.setdefault(
                    (session.application_id, session.profile_id), integration_id
                )
                first = owner == integration_id
            snapshot = msgspec.structs.replace(session, first_session=first)
            snapshots.append(_Record(0, len(snapshots), key, encode_json(snapshot)))
        transitions += [_Record(0, len(transitions), key, t) for t in history.transitions]
    for (topic, partition, offset), rejected in sorted(expectation.rejections.items()):
        record = rejected.record
        source = RejectionSource(topic, partition, offset, decode_key(record.key))
        reason = Rejected(rejected.code, "message")
        rejection = build_rejection(reason, record.value, source, datetime.now(UTC))
        dead_letters.append(_Record(0, len(dead_letters), record.key, encode_json(rejection)))
    return snapshots, transitions, dead_letters


@pytest.fixture(scope="module")
def expectation() -> Expectation:
    """A replayed workload of 400 records over 30 sessions, all on one partition."""
    records = InputRecord.numbered(generate_workload(5, 30, 400), topic="in")
    assert any(isinstance(decode_event(r.value), Rejected) for r in records)
    return expect(records)


def test_checks_pass_on_what_a_correct_worker_emits(expectation: Expectation) -> None:
    findings = check_outputs(expectation, *_perfect_outputs(expectation))
    assert findings.ok, findings.lines()


def test_checks_catch_a_duplicated_snapshot_transition_and_dead_letter(
    expectation: Expectation,
) -> None:
    snapshots, transitions, dead_letters = _perfect_outputs(expectation)
    snapshots.insert(5, snapshots[4])
    transitions.insert(3, transitions[2])
    dead_letters.append(dead_letters[0])
    problems = check_outputs(expectation, snapshots, transitions, dead_letters).problems
    assert problems["repeated updateCount (duplicate snapshot)"] == 1
    assert problems["transition duplicated or unexpected"] == 1
    assert problems["dead letter duplicated"] == 1


def test_checks_catch_lost_outputs(expectation: Expectation) -> None:
    snapshots, transitions, dead_letters = _perfect_outputs(expectation)
    # Snapshot 2 of a session that claims no profile before its fourth event.
    history = next(h for h in expectation.sessions.values() if min(h.claim_counts, default=99) >= 4)
    lost = next(
        i
        for i, r in enumerate(snapshots)
        if r.key == history.integration_id.encode()
        and msgspec.json.decode(r.value)["updateCount"] == 2
    )
    del snapshots[lost]
    del transitions[0]
    del dead_letters[0]
    problems = check_outputs(expectation, snapshots, transitions, dead_letters).problems
    assert problems["skipped updateCount (lost snapshot)"] == 1
    assert problems["transition lost"] == 1
    assert problems["dead letter missing"] == 1


def test_a_gap_after_a_claim_is_told_apart_from_a_lost_snapshot(expectation: Expectation) -> None:
    """After a claim, a gap may be snapshots held again by a repeated verdict (at_least_once)."""
    snapshots, transitions, dead_letters = _perfect_outputs(expectation)
    history = next(
        h
        for h in expectation.sessions.values()
        if 1 in h.claim_counts and 2 not in h.claim_counts and h.final_count >= 3
    )
    held = next(
        i
        for i, r in enumerate(snapshots)
        if r.key == history.integration_id.encode()
        and msgspec.json.decode(r.value)["updateCount"] == 2
    )
    del snapshots[held]
    problems = check_outputs(expectation, snapshots, transitions, dead_letters).problems
    assert problems == {"snapshots held again until a repeated verdict": 1}
    assert "snapshots held again until a repeated verdict" in REPEATS
    assert "skipped updateCount (lost snapshot)" not in REPEATS


def test_checks_catch_a_wrong_snapshot_and_a_second_first_session(
    expectation: Expectation,
) -> None:
    snapshots, transitions, dead_letters = _perfect_outputs(expectation)
    index = next(i for i, r in enumerate(snapshots) if b'"firstSession":false' in r.value)
    wrong = snapshots[index].value.replace(b'"firstSession":false', b'"firstSession":true')
    snapshots[index] = _Record(0, snapshots[index].offset, snapshots[index].key, wrong)
    changed = snapshots[0].value.replace(b'"coupon":"', b'"coupon":"X', 1)
    snapshots[0] = _Record(0, 0, snapshots[0].key, changed)
    problems = check_outputs(expectation, snapshots, transitions, dead_letters).problems
    assert problems["several first sessions for one profile"] >= 1
    assert problems["snapshot differs from the replay"] == 1


@pytest.fixture
def options(kafka_bootstrap: str, tmp_path: Path) -> DrillOptions:
    """Drill options on the test broker, with worker logs under the test's tmp_path."""
    return DrillOptions(
        bootstrap=kafka_bootstrap, root=tmp_path, seed=7, worker_env=dict(WORKER_ENV)
    )


@pytest.mark.asyncio
async def test_kill9_loses_and_duplicates_nothing(options: DrillOptions) -> None:
    result = await kill9(options, **QUICK["kill9"])
    assert result.passed, render(result)


@pytest.mark.asyncio
async def test_kill9_loses_nothing_under_at_least_once(options: DrillOptions) -> None:
    result = await kill9_at_least_once(options, **QUICK["kill9_at_least_once"])
    assert result.passed, render(result)


@pytest.mark.asyncio
async def test_two_workers_killed_and_restarted_lose_and_duplicate_nothing(
    options: DrillOptions,
) -> None:
    result = await chaos(options, **QUICK["chaos"])
    assert result.passed, render(result)
    assert result.figures["restarts"] >= 4


@pytest.mark.asyncio
async def test_two_workers_killed_and_restarted_lose_nothing_under_at_least_once(
    options: DrillOptions,
) -> None:
    result = await chaos_at_least_once(options, **QUICK["chaos_at_least_once"])
    assert result.passed, render(result)


@pytest.mark.asyncio
async def test_state_restored_from_changelog_after_data_dir_wipe(options: DrillOptions) -> None:
    result = await state_wiped(options, **QUICK["state_wiped"])
    assert result.passed, render(result)


@pytest.mark.asyncio
async def test_poison_flood_is_dead_lettered_without_stalling(options: DrillOptions) -> None:
    result = await poison_flood(options, **QUICK["poison_flood"])
    assert result.passed, render(result)


@pytest.mark.asyncio
@pytest.mark.parametrize("drill", [expiry, expiry_at_least_once])
async def test_a_worker_killed_while_sessions_expire_loses_and_resurrects_none(
    options: DrillOptions, drill: Callable[..., Awaitable[DrillResult]]
) -> None:
    result = await drill(options, **QUICK[drill.__name__])
    assert result.passed, render(result)
    assert result.figures["expected_removed"] > 0
    assert result.figures["expected_live"] > 0
