"""Parsing in the operator commands: produce's lines, dlq's times, offsets and selection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream_app.domain import Rejection, RejectionDetail, RejectionSource
from stream_app.tools.dlq import (
    DeadLetter,
    Selection,
    UsageError,
    parse_offsets,
    parse_time,
)
from stream_app.tools.produce import BadLine, Outcome, numbered_records, parse_line


def test_a_json_line_is_keyed_by_its_integration_id() -> None:
    line = b'{"integrationId":"S-1","x":{"y":"\\t"}}'
    assert parse_line(line, "auto") == (b"S-1", line)
    assert parse_line(line, "json") == (b"S-1", line)


def test_a_tab_before_the_first_brace_makes_a_keyed_line() -> None:
    assert parse_line(b"K\t{broken", "auto") == (b"K", b"{broken")
    assert parse_line(b"\tvalue", "auto") == (None, b"value")
    assert parse_line(b'{\t"integrationId":"S"}', "auto") == (b"S", b'{\t"integrationId":"S"}')
    with pytest.raises(BadLine, match="key<TAB>value"):
        parse_line(b"no tab", "keyed")


@pytest.mark.parametrize("line", [b"[1]", b"{", b'{"integrationId":1}', b'{"integrationId":""}'])
def test_json_lines_without_a_usable_integration_id_are_bad(line: bytes) -> None:
    with pytest.raises(BadLine):
        parse_line(line, "json")


def test_bad_lines_are_numbered_and_blank_lines_ignored() -> None:
    outcome = Outcome()
    lines = [b'{"integrationId":"A"}\n', b"\n", b"oops\r\n", b'{"integrationId":"B"}']
    records = list(numbered_records(lines, "auto", outcome))
    assert [key for key, _ in records] == [b"A", b"B"]
    assert [number for number, _ in outcome.bad] == [3]


def test_times_are_rfc3339_or_durations_before_now() -> None:
    now = datetime(2026, 1, 2, 12, tzinfo=UTC)
    assert parse_time("2h", now) == datetime(2026, 1, 2, 10, tzinfo=UTC)
    assert parse_time("1d", now) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_time("2026-01-01T10:00:00Z") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(UsageError, match="no UTC offset"):
        parse_time("2026-01-01T10:00:00")
    with pytest.raises(UsageError):
        parse_time("yesterday")


def test_offsets_are_a_partition_and_an_inclusive_range() -> None:
    assert parse_offsets("3:41") == (3, 41, 41)
    assert parse_offsets("0:5-9") == (0, 5, 9)
    with pytest.raises(UsageError):
        parse_offsets("0:9-5")
    with pytest.raises(UsageError):
        parse_offsets("x")


def test_selection_requires_every_criterion() -> None:
    letter = DeadLetter(partition=2, offset=7, timestamp_ms=1_000_000, key=b"K", rejection=None)
    assert Selection().matches(letter)
    assert not Selection().narrowed
    assert Selection(codes=frozenset({"undecodable"}), keys=frozenset({b"K"})).matches(letter)
    assert not Selection(codes=frozenset({"undecodable"}), keys=frozenset({b"L"})).matches(letter)
    assert Selection(offsets=[(2, 5, 7)]).matches(letter)
    assert not Selection(offsets=[(1, 5, 7), (2, 8, 9)]).matches(letter)
    moment = datetime.fromtimestamp(1000, UTC)
    assert Selection(since=moment).matches(letter)
    assert not Selection(until=moment).matches(letter)


def test_dlq_lines_show_terminal_escapes_and_bidi_characters_as_escapes() -> None:
    rejection = Rejection(
        error=RejectionDetail(code="key_mismatch", message="id 'a\x1b[2Jb' - at `$`"),
        event="{}",
        event_encoding="utf-8",
        source=RejectionSource(topic="in", partition=0, offset=3, key="a\x1b[2Jb"),
        rejected_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    letter = DeadLetter(partition=1, offset=2, timestamp_ms=1_000_000,
                        key="x\x1b]0;owned\x07\u202ey".encode(), rejection=rejection)  # fmt: skip
    line = letter.line()
    assert line.isprintable()
    assert "key=x\\x1b]0;owned\\x07\\u202ey" in line
    assert "id 'a\\x1b[2Jb'" in line
    plain = DeadLetter(partition=1, offset=2, timestamp_ms=0, key=b"plain-key", rejection=None)
    assert "key=plain-key" in plain.line()
