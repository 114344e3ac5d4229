"""The workload generator and the hostile records used by the demo, bench and drills."""

from __future__ import annotations

import itertools
from collections import Counter

import msgspec
import pytest

from dev.bench import core
from dev.harness.replay import InputRecord, replay
from dev.harness.workload import HOSTILE_KINDS, generate_workload, hostile_records
from stream_app.domain import (
    Applied,
    Rejected,
    ReturnEvent,
    Skipped,
    StoredSession,
    apply_event,
    decode_event,
)


def _outcomes(
    records: list[tuple[str | None, bytes]],
) -> tuple[Counter[str], dict[str, StoredSession]]:
    counts: Counter[str] = Counter()
    states: dict[str, StoredSession] = {}
    for step in replay(InputRecord.numbered(records)):
        match step.outcome:
            case Applied(stored=stored, transition=transition):
                states[stored.session.integration_id] = stored
                counts["applied"] += 1
                counts["return"] += isinstance(step.event, ReturnEvent)
                if transition is not None:
                    counts[transition.to] += 1
            case Skipped():
                counts["skipped"] += 1
            case Rejected():
                counts["rejected"] += 1
    return counts, states


def test_the_workload_is_deterministic() -> None:
    first = list(generate_workload(7, 50, 500))
    assert first == list(generate_workload(7, 50, 500))
    assert first != list(generate_workload(8, 50, 500))


def test_every_valid_record_applies_and_every_bad_one_is_rejected() -> None:
    records = list(generate_workload(3, 300, 5000, bad_ratio=0.05, duplicate_ratio=0.02))
    assert len(records) == 5000
    assert all(key is not None for key, _ in records)
    counts, states = _outcomes(records)
    assert counts["rejected"] == 250
    assert counts["skipped"] == 100
    assert counts["applied"] == 4650
    assert counts["return"] > 0
    for state in ("open", "closed", "partially_returned", "cancelled"):
        assert counts[state] > 0, state
    assert len(states) == 300
    profiles = Counter(state.session.profile_id for state in states.values())
    assert profiles[""] > 0
    assert any(count > 1 for profile, count in profiles.items() if profile)


def test_the_workload_scales() -> None:
    records = list(itertools.islice(generate_workload(1, 2000, 20_000), 20_000))
    assert len({key for key, _ in records}) == 2000


def test_a_workload_needs_room_for_valid_events() -> None:
    with pytest.raises(ValueError, match="no room"):
        list(generate_workload(1, 10, 10, bad_ratio=0.5, duplicate_ratio=0.5))


def test_hostile_records_never_break_the_core() -> None:
    records = list(hostile_records(5, 2 * len(HOSTILE_KINDS)))
    assert len(records) == 2 * len(HOSTILE_KINDS)
    rejected = 0
    for key, value in records:
        assert len(value) < 2**20
        event = decode_event(value)
        if isinstance(event, Rejected):
            rejected += 1
            continue
        text_key = None if key is None else key.decode("utf-8", "backslashreplace")
        apply_event(None, event, text_key)
    assert rejected >= 2 * (len(HOSTILE_KINDS) - 3)


def test_core_bench_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert core.main(["--events", "2000"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = msgspec.json.decode(lines[-1])
    assert figures["events"] == 2000
    assert figures["states_in_memory"]["events_per_second"] > 0
    assert figures["states_as_bytes"]["events_per_second"] > 0
