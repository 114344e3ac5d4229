"""No record can stop a partition: forged provenance headers, failures while handling one
record, and records on the internal topics that the worker did not write."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.domain import (
    CustomerSession,
    ProfileClaim,
    decode_rejection,
    decode_stored,
    encode_claim,
    session_too_large,
)
from stream_app.settings import OnProcessingError
from stream_app.worker import sessions as sessions_module
from stream_app.worker.dead_letters import MAX_ERROR_TEXT, original_source
from stream_app.worker.metrics import Metrics
from stream_app.worker.profiles import ProfileProcessor
from stream_app.worker.sessions import SESSION_PARTITION_HEADER

from .builders import CART, raw, update
from .test_processors import INPUT, KEY, SETTINGS, FakeTable, Message, Sessions, _event

REKEYED = SETTINGS.rekeyed_topic
DLQ = SETTINGS.dlq_topic


@pytest.fixture
def sessions() -> Sessions:
    return Sessions()


def _dead_letter(sessions: Sessions) -> Any:
    [dead] = sessions.producer.to(DLQ)
    return dead, decode_rejection(dead.value)


FORGED_HEADERS = {
    "partition not a number": [
        ("source-topic", b"elsewhere"), ("source-partition", b"abc"), ("source-offset", b"1"),
    ],
    "topic not UTF-8": [
        ("source-topic", b"\xff\xfe"), ("source-partition", b"1"), ("source-offset", b"1"),
    ],
    "well-formed": [
        ("source-topic", b"elsewhere"), ("source-partition", b"7"), ("source-offset", b"99"),
    ],
    "negative offset": [
        ("source-topic", b"elsewhere"), ("source-partition", b"1"), ("source-offset", b"-5"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("headers", FORGED_HEADERS.values(), ids=FORGED_HEADERS.keys())
def test_source_headers_on_the_input_topic_are_never_trusted(
    sessions: Sessions, headers: list[tuple[str, bytes]]
) -> None:
    # Any producer can set headers: on the input topic the record's own coordinates and key
    # are its provenance, whatever it carries.
    message = sessions.consume(b"not json", key=b"k1", headers=headers)
    dead, rejection = _dead_letter(sessions)
    assert rejection.error.code == "malformed_json"
    assert dead.key == b"k1"
    source = rejection.source
    assert (source.topic, source.partition, source.offset, source.key) == (
        INPUT, 3, message.offset, "k1",
    )  # fmt: skip


MALFORMED_ON_REKEYED = {
    **{name: h for name, h in FORGED_HEADERS.items() if name != "well-formed"},
    "missing offset": [("source-topic", b"in"), ("source-partition", b"1")],
    "repeated": [
        ("source-topic", b"in"), ("source-partition", b"1"), ("source-offset", b"1"),
        ("source-offset", b"2"),
    ],
    "spaces and signs": [
        ("source-topic", b"in"), ("source-partition", b" 1"), ("source-offset", b"+1"),
    ],
    "not a topic name": [
        ("source-topic", b"a/b"), ("source-partition", b"1"), ("source-offset", b"1"),
    ],
    "huge": [
        ("source-topic", b"t" * 300), ("source-partition", b"1"), ("source-offset", b"9" * 40),
    ],
}  # fmt: skip


@pytest.mark.parametrize("headers", MALFORMED_ON_REKEYED.values(), ids=MALFORMED_ON_REKEYED.keys())
def test_malformed_source_headers_on_the_rekeyed_topic_fall_back_to_its_coordinates(
    headers: list[tuple[str, bytes]],
) -> None:
    message = Message(REKEYED, b"s1", b"x", partition=2, offset=17, headers=headers)
    source = original_source(message, REKEYED)
    assert (source.topic, source.partition, source.offset, source.key) == (REKEYED, 2, 17, "s1")


def test_well_formed_source_headers_on_the_rekeyed_topic_name_the_original_record() -> None:
    headers = FORGED_HEADERS["well-formed"]
    source = original_source(Message(REKEYED, b"s1", b"x", headers=headers), REKEYED)
    assert (source.topic, source.partition, source.offset, source.key) == (
        "elsewhere", 7, 99, None,
    )  # fmt: skip


def _failing_snapshot_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make encoding a snapshot raise, after the event's claim and transition are queued."""
    real = sessions_module.encode_json

    def encode(value: Any) -> bytes:
        if isinstance(value, CustomerSession) and value.coupon == "BOOM":
            raise KeyError("snapshot encoder broke")
        return real(value)

    monkeypatch.setattr(sessions_module, "encode_json", encode)


def test_a_record_whose_handling_raises_is_dead_lettered_and_the_batch_goes_on(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions.consume(_event("e1", cartItems=CART, profileId="p1"))
    sessions.verdict(KEY, "p1", is_first=True)
    before = sessions.table.rows[KEY]
    sessions.producer.sent.clear()
    applied_before = sessions.metrics.applied
    _failing_snapshot_encoder(monkeypatch)

    bad = _event("e2", coupon="BOOM", state="closed")  # would send a transition first
    batch = [
        Message(INPUT, KEY.encode(), bad, offset=10),
        Message(INPUT, KEY.encode(), _event("e3", coupon="FINE"), offset=11),
    ]
    asyncio.run(sessions.processor.handle_batch(batch))

    # The failed record left only its dead letter: no transition, no snapshot, no state.
    sent_topics = [record.topic for record in sessions.producer.sent]
    assert sent_topics == [DLQ, SETTINGS.output_topic]
    dead, rejection = _dead_letter(sessions)
    assert dead.key == KEY.encode()
    assert rejection.error.code == "processing_error"
    assert rejection.error.message == "KeyError: 'snapshot encoder broke'"
    assert rejection.event == bad.decode()
    assert (rejection.source.topic, rejection.source.offset) == (INPUT, 10)
    # The next record of the batch was applied on the state before the failed one.
    stored = decode_stored(sessions.table.rows[KEY])
    assert (stored.session.coupon, stored.session.state) == ("FINE", "open")
    assert stored.session.update_count == decode_stored(before).session.update_count + 1
    metrics = sessions.metrics
    assert metrics.applied == applied_before + 1
    assert metrics.rejected == {"processing_error": 1}
    assert sum(metrics.transitions.values()) == 1  # the creation only


def test_with_on_processing_error_stop_the_exception_stops_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions = Sessions(settings=replace(SETTINGS, on_processing_error=OnProcessingError.STOP))
    _failing_snapshot_encoder(monkeypatch)
    with pytest.raises(KeyError, match="snapshot encoder broke"):
        sessions.consume(_event("e1", coupon="BOOM"))
    assert sessions.producer.sent == []
    assert sessions.table.rows == {}


def test_the_error_text_of_a_processing_error_is_bounded(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: Any) -> None:
        raise ValueError("x" * 10_000)

    monkeypatch.setattr(sessions_module, "apply_event", explode)
    sessions.consume(_event("e1"))
    _, rejection = _dead_letter(sessions)
    assert rejection.error.code == "processing_error"
    assert len(rejection.error.message) == MAX_ERROR_TEXT
    assert rejection.error.message.startswith("ValueError: xxx")


@pytest.mark.parametrize("value", [b"", b"garbage", b'{"applicationId": "x"}', b"[]"])
def test_a_verdict_the_worker_cannot_read_is_dead_lettered(
    sessions: Sessions, value: bytes
) -> None:
    sessions.consume(value, key=b"v", topic=SETTINGS.verdicts_topic)
    _, rejection = _dead_letter(sessions)
    assert rejection.error.code == "invalid_internal_record"
    assert rejection.error.message.startswith("Not a firstSession verdict: ")
    assert rejection.source.topic == SETTINGS.verdicts_topic
    assert sessions.metrics.rejected == {"invalid_internal_record": 1}


def _claim_batch(*messages: Message) -> tuple[FakeTable, Metrics]:
    table, metrics = FakeTable(), Metrics()
    processor = ProfileProcessor(SETTINGS, table, table, metrics, partitions=8)
    asyncio.run(processor.handle_batch(list(messages)))
    return table, metrics


def _claim(integration_id: str, headers: Any = None, offset: int = 0) -> Message:
    value = encode_claim(ProfileClaim(322, "p1", integration_id))
    return Message(SETTINGS.claims_topic, b"322:p1", value, 0, offset, headers)


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        (None, b"garbage"),
        (None, b'{"applicationId": 1}'),
        ([(SESSION_PARTITION_HEADER, b"abc")], None),
        ([(SESSION_PARTITION_HEADER, b"8")], None),  # the topics have 8 partitions: 0-7
        ([(SESSION_PARTITION_HEADER, b"-1")], None),
        ([(SESSION_PARTITION_HEADER, b"1"), (SESSION_PARTITION_HEADER, b"2")], None),
        ([(SESSION_PARTITION_HEADER, "\u0661".encode())], None),  # an Arabic-Indic 1
    ],
)
def test_a_claim_the_worker_cannot_route_is_dead_lettered_and_later_claims_go_on(
    headers: Any, value: bytes | None
) -> None:
    bad = _claim("s-bad", headers)
    if value is not None:
        bad = replace(bad, value=value)
    table, metrics = _claim_batch(bad, _claim("s-good", [(SESSION_PARTITION_HEADER, b"7")], 1))
    dead, verdict = table.producer.sent
    assert dead.topic == DLQ
    rejection = decode_rejection(dead.value)
    assert rejection.error.code == "invalid_internal_record"
    assert (rejection.source.topic, rejection.source.offset) == (SETTINGS.claims_topic, 0)
    assert (verdict.topic, verdict.key, verdict.partition) == (
        SETTINGS.verdicts_topic, b"s-good", 7,
    )  # fmt: skip
    assert table.rows == {"322:p1": b"s-good"}
    assert metrics.rejected == {"invalid_internal_record": 1}


# Arbitrary records on each topic the session agent reads, with arbitrary keys and headers.
_headers = st.lists(
    st.tuples(
        st.sampled_from(["source-topic", "source-partition", "source-offset", "x", ""]),
        st.binary(max_size=40),
    ),
    max_size=5,
)
_values = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda event_id, coupon, state: _event(event_id, coupon=coupon, state=state),
        st.sampled_from(["e1", "e2"]),
        st.text(max_size=5),
        st.sampled_from(["open", "closed", "cancelled"]),
    ),
)
_records = st.lists(
    st.tuples(
        st.sampled_from([INPUT, REKEYED, SETTINGS.verdicts_topic]),
        st.one_of(st.none(), st.just(KEY.encode()), st.binary(max_size=20)),
        st.one_of(st.none(), _values),
        _headers,
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=_records)
def test_arbitrary_records_never_raise_and_each_ends_as_output_or_dead_letter(
    records: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    # With `stop`, any exception would escape: none may, whatever the bytes, keys or headers.
    stop = replace(SETTINGS, on_processing_error=OnProcessingError.STOP)
    sessions = Sessions(settings=stop)
    batch = [
        Message(topic, key, value, offset=n, headers=headers)
        for n, (topic, key, value, headers) in enumerate(records)
    ]
    asyncio.run(sessions.processor.handle_batch(batch))
    metrics = sessions.metrics
    dead = sessions.producer.to(DLQ)
    assert len(dead) == sum(metrics.rejected.values())
    assert "processing_error" not in metrics.rejected
    for record in dead:
        decode_rejection(record.value)  # a readable dead letter
    # Each record has exactly one outcome: applied, a duplicate, dead-lettered, re-keyed, or
    # a verdict applied (under exactly_once a verdict without its session is dead-lettered).
    outcomes = (
        metrics.applied + metrics.duplicates + len(dead)
        + len(sessions.producer.to(REKEYED)) + metrics.verdicts_applied
    )  # fmt: skip
    assert outcomes == len(batch)
    assert metrics.events_consumed == sum(1 for message in batch if message.topic == INPUT)


def test_session_too_large_counts_both_the_stored_and_the_published_form() -> None:
    assert session_too_large(4096, 4096, 4096) is None
    stored = session_too_large(4097, 10, 4096)
    assert stored is not None
    assert stored.code == "session_too_large"
    assert "4,097 bytes stored, over the limit of 4,096" in stored.message
    snapshot = session_too_large(10, 5000, 4096)
    assert snapshot is not None
    assert "5,000 bytes as a snapshot" in snapshot.message


def test_an_event_that_grows_a_session_past_the_limit_is_rejected_and_changes_nothing() -> None:
    sessions = Sessions(settings=replace(SETTINGS, max_session_bytes=8192))
    sessions.consume(_event("e1", attributes={"a": "x" * 3000}))
    sessions.consume(_event("e2", attributes={"b": "y" * 3000}))
    before = sessions.table.rows[KEY]
    sessions.producer.sent.clear()

    too_big = _event("e3", attributes={"c": "z" * 3000}, state="closed")
    sessions.consume(too_big)
    [dead] = sessions.producer.sent  # no snapshot, no transition
    assert dead.topic == DLQ
    rejection = decode_rejection(dead.value)
    assert rejection.error.code == "session_too_large"
    assert rejection.event == too_big.decode()
    assert sessions.table.rows[KEY] == before
    assert sessions.metrics.rejected == {"session_too_large": 1}

    # The session goes on from its previous state; the refused event is not remembered.
    sessions.consume(_event("e3", attributes={"c": "small"}))
    stored = decode_stored(sessions.table.rows[KEY])
    assert sorted(stored.session.attributes) == ["a", "b", "c"]
    assert "e3" in stored.recent_event_ids


def test_a_held_session_is_measured_as_the_snapshot_it_will_release() -> None:
    # Control characters take 6 bytes each in JSON and 1 in msgpack: the held session's
    # stored form fits, the snapshot its verdict would release does not.
    sessions = Sessions(settings=replace(SETTINGS, max_session_bytes=8192))
    sessions.consume(_event("e1", profileId="p1", attributes={"a": "\x01" * 1000}))
    assert sessions.producer.to(DLQ) == []
    sessions.consume(_event("e2", attributes={"b": "\x01" * 1000}))
    [dead] = sessions.producer.to(DLQ)
    assert "as a snapshot" in decode_rejection(dead.value).error.message


def test_a_replayed_record_that_fails_again_carries_its_attempt_count(sessions: Sessions) -> None:
    replay = [("stream-app-replay-of", b"dlq:0:7"), ("stream-app-replay-attempt", b"2")]
    sessions.consume(b"not json", headers=[*replay, ("other", b"x")])
    dead, _ = _dead_letter(sessions)
    assert dead.headers == replay


@pytest.mark.parametrize(
    "headers",
    [
        [("stream-app-replay-attempt", b"0")],
        [("stream-app-replay-attempt", b"-1")],
        [("stream-app-replay-attempt", b"99999")],
        [("stream-app-replay-attempt", b"1"), ("stream-app-replay-attempt", b"2")],
        [("stream-app-replay-of", b"x" * 301)],
    ],
)
def test_malformed_replay_headers_are_not_carried(
    sessions: Sessions, headers: list[tuple[str, bytes]]
) -> None:
    sessions.consume(b"not json", headers=headers)
    dead, _ = _dead_letter(sessions)
    assert dead.headers is None


def test_a_stored_session_that_does_not_decode_fails_only_its_own_records(
    sessions: Sessions,
) -> None:
    # The batch's sessions are read ahead in one read; each is decoded when its record needs it.
    sessions.consume(_event("e1", cartItems=CART))
    sessions.table.rows[KEY] = b"\xc1 not msgpack"
    other = "other-session"
    batch = [
        Message(INPUT, KEY.encode(), _event("e2", coupon="LOST"), offset=10),
        Message(
            INPUT,
            other.encode(),
            raw({**update("o1"), "integrationId": other, "applicationId": 322}),
            offset=11,
        ),
    ]
    asyncio.run(sessions.processor.handle_batch(batch))
    dead, rejection = _dead_letter(sessions)
    assert (dead.key, rejection.error.code) == (KEY.encode(), "processing_error")
    assert sessions.table.rows[KEY] == b"\xc1 not msgpack"  # kept as it was
    assert decode_stored(sessions.table.rows[other]).session.integration_id == other
