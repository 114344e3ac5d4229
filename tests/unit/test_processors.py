"""The two agents' bodies, SessionProcessor and ProfileProcessor, with in-memory fakes of Faust.

No broker and no Faust: a dict stands in for a table, a list for the producer. Every outcome
path of a consumed record is covered, down to the bytes and headers each send carries.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_app.domain import (
    ProfileClaim,
    ProfileVerdict,
    decode_claim,
    decode_customer_session,
    decode_rejection,
    decode_stored,
    decode_transition,
    decode_verdict,
    encode_claim,
    encode_verdict,
)
from stream_app.settings import ProcessingGuarantee, Settings
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import Headers, Outbox
from stream_app.worker.profiles import ProfileProcessor
from stream_app.worker.sessions import SESSION_PARTITION_HEADER, SessionProcessor

from .builders import CART, raw, update

SETTINGS = Settings.from_env({"STREAM_APP_ID": "app", "STREAM_APP_DATA_DIR": str(Path("x"))})
ALO = replace(SETTINGS, processing_guarantee=ProcessingGuarantee.AT_LEAST_ONCE)
INPUT = SETTINGS.input_topic
KEY = "s1"


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: Headers | None


@dataclass
class FakeProducer:
    sent: list[Sent] = field(default_factory=list)

    def to(self, topic: str) -> list[Sent]:
        return [record for record in self.sent if record.topic == topic]


@dataclass
class FakeTable:
    """A table of bytes in one dict, and its writer: a batch's records land on a fake producer."""

    producer: FakeProducer = field(default_factory=FakeProducer)
    rows: dict[str, bytes] = field(default_factory=dict)
    #: (partition, key) of every read, and the last record of every written batch.
    reads: list[tuple[int, str]] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    writes: int = 0
    #: (partition, start) of every scan.
    scans: list[tuple[int, str]] = field(default_factory=list)

    def get(self, partition: int, key: str) -> bytes | None:
        self.reads.append((partition, key))
        return self.rows.get(key)

    def get_many(self, partition: int, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(partition, key) for key in keys]

    def lookup(self, key: str) -> bytes | None:
        return self.rows.get(key)

    def count(self, partition: int) -> int:
        return len(self.rows)

    def scan(
        self, partition: int, start: str, stop: str, limit: int
    ) -> tuple[list[tuple[str, bytes]], str | None]:
        self.scans.append((partition, start))
        keys = sorted(key for key in self.rows if key >= start)
        rows = [(key, self.rows[key]) for key in keys[:limit] if key < stop]
        following = keys[len(rows)] if len(keys) > len(rows) else None
        return rows, following

    async def write(
        self, source: Any, outbox: Outbox, changes: Sequence[tuple[str, bytes | None]]
    ) -> None:
        self.sources.append(source)
        self.producer.sent.extend(Sent(*record) for record in outbox.records)
        for key, value in changes:
            self.writes += 1
            if value is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = value


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 3
    offset: int = 0
    headers: Sequence[tuple[str, bytes]] | None = None
    timestamp: float = field(default_factory=lambda: time.time() - 2.0)


@dataclass
class Sessions:
    """A SessionProcessor on fakes, and a way to feed it records."""

    table: FakeTable = field(default_factory=FakeTable)
    metrics: Metrics = field(default_factory=Metrics)
    offset: int = 0
    settings: Settings = SETTINGS

    @property
    def producer(self) -> FakeProducer:
        return self.table.producer

    @property
    def processor(self) -> SessionProcessor:
        return SessionProcessor(self.settings, self.table, self.table, self.metrics)

    def consume(
        self,
        value: bytes | None,
        key: bytes | None = KEY.encode(),
        topic: str = INPUT,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Message:
        message = Message(topic, key, value, offset=self.offset, headers=headers)
        self.offset += 1
        asyncio.run(self.processor.handle(message))
        return message

    def verdict(self, integration_id: str, profile_id: str, is_first: bool) -> None:
        verdict = ProfileVerdict(322, profile_id, integration_id, is_first)
        self.consume(encode_verdict(verdict), integration_id.encode(), SETTINGS.verdicts_topic)


def _event(event_id: str, **session: Any) -> bytes:
    return raw({**update(event_id, **session), "integrationId": KEY, "applicationId": 322})


@pytest.fixture
def sessions() -> Sessions:
    return Sessions()


def test_an_applied_event_is_stored_and_sends_its_snapshot_and_transition(
    sessions: Sessions,
) -> None:
    sessions.consume(_event("e1", cart_items=CART))
    [snapshot] = sessions.producer.to(SETTINGS.output_topic)
    [transition] = sessions.producer.to(SETTINGS.transitions_topic)
    assert len(sessions.producer.sent) == 2
    assert snapshot.key == transition.key == KEY.encode()
    session = decode_customer_session(snapshot.value)
    assert (session.integration_id, session.update_count, session.first_session) == (KEY, 1, True)
    moved = decode_transition(transition.value)
    assert (moved.from_state, moved.to) == (None, "open")
    assert decode_stored(sessions.table.rows[KEY]).session == session
    assert sessions.processor.lookup(KEY) == session
    metrics = sessions.metrics
    assert (metrics.events_consumed, metrics.applied, metrics.snapshots_sent) == (1, 1, 1)
    assert metrics.transitions == {"open": 1}
    assert metrics.latency_count == 1
    # The record was stamped two seconds before it was handled.
    assert metrics.end_to_end.count == 1
    assert 2.0 <= metrics.end_to_end.total < 60.0


def test_a_batch_applies_its_records_in_order_and_writes_each_session_once(
    sessions: Sessions,
) -> None:
    batch = [
        Message(INPUT, KEY.encode(), _event(f"e{n}", cart_items=CART), offset=n) for n in range(3)
    ] + [Message(INPUT, KEY.encode(), _event("e3", state="closed"), offset=3)]
    asyncio.run(sessions.processor.handle_batch(batch))
    snapshots = [
        decode_customer_session(r.value) for r in sessions.producer.to(SETTINGS.output_topic)
    ]
    assert [s.update_count for s in snapshots] == [1, 2, 3, 4]
    assert [
        decode_transition(r.value).to for r in sessions.producer.to(SETTINGS.transitions_topic)
    ] == [
        "open",
        "closed",
    ]
    # One read and one table write (one changelog record) for the session, with its state
    # after the batch, written together with the batch's records in the batch's partition.
    assert sessions.table.reads == [(3, KEY)]
    assert sessions.table.writes == 1
    assert [source.offset for source in sessions.table.sources] == [3]
    assert decode_stored(sessions.table.rows[KEY]).session == snapshots[-1]
    assert sessions.metrics.latency_count == 4


def test_an_event_without_a_state_change_sends_no_transition(sessions: Sessions) -> None:
    sessions.consume(_event("e1"))
    sessions.producer.sent.clear()
    sessions.consume(_event("e2", coupon="C1"))
    [snapshot] = sessions.producer.sent
    assert snapshot.topic == SETTINGS.output_topic
    assert decode_customer_session(snapshot.value).coupon == "C1"


def test_a_closing_event_sends_its_transition(sessions: Sessions) -> None:
    sessions.consume(_event("e1"))
    sessions.consume(_event("e2", state="closed"))
    moves = [decode_transition(r.value) for r in sessions.producer.to(SETTINGS.transitions_topic)]
    assert [(m.from_state, m.to) for m in moves] == [(None, "open"), ("open", "closed")]
    assert sessions.metrics.transitions == {"open": 1, "closed": 1}


def test_a_claim_goes_out_with_the_session_partition_and_the_snapshot_is_held(
    sessions: Sessions,
) -> None:
    sessions.consume(_event("e1"))
    published = decode_customer_session(sessions.producer.to(SETTINGS.output_topic)[0].value)
    sessions.consume(_event("e2", profile_id="p1"))
    [claim] = sessions.producer.to(SETTINGS.claims_topic)
    assert claim.key == b"322:p1"
    assert decode_claim(claim.value) == ProfileClaim(322, "p1", KEY)
    # The verdict must come back to the partition this session's record was read from.
    assert claim.headers == [(SESSION_PARTITION_HEADER, b"3")]
    assert len(sessions.producer.to(SETTINGS.output_topic)) == 1  # held: nothing new
    assert sessions.metrics.claims_sent == 1
    assert sessions.metrics.snapshots_held == 1
    # Until the verdict, GET /sessions keeps answering the last snapshot sent.
    assert sessions.processor.lookup(KEY) == published


def test_a_verdict_is_applied_and_releases_the_held_snapshot(sessions: Sessions) -> None:
    sessions.consume(_event("e1", profile_id="p1"))
    assert sessions.producer.to(SETTINGS.output_topic) == []
    assert sessions.processor.lookup(KEY) is None
    sessions.verdict(KEY, "p1", is_first=False)
    [snapshot] = sessions.producer.to(SETTINGS.output_topic)
    assert snapshot.key == KEY.encode()
    released = decode_customer_session(snapshot.value)
    assert (released.profile_id, released.first_session, released.update_count) == ("p1", False, 1)
    assert decode_stored(sessions.table.rows[KEY]).claims == {"p1": False}
    assert sessions.processor.lookup(KEY) == released
    metrics = sessions.metrics
    assert (metrics.verdicts_consumed, metrics.verdicts_applied) == (1, 1)
    # A verdict is not an input event.
    assert metrics.events_consumed == 1
    assert metrics.snapshots_sent == 1


def test_a_verdict_for_a_session_not_in_the_table_is_dead_lettered_under_exactly_once(
    sessions: Sessions,
) -> None:
    # A claim only leaves with its session's state: the worker never wrote this verdict's
    # claim. The partition goes on; the verdict is kept on the dead-letter topic.
    sessions.verdict("unknown", "p1", is_first=True)
    [dead] = sessions.producer.sent
    assert dead.topic == SETTINGS.dlq_topic
    rejection = decode_rejection(dead.value)
    assert rejection.error.code == "invalid_internal_record"
    assert "'unknown'" in rejection.error.message
    assert rejection.source.topic == SETTINGS.verdicts_topic
    assert sessions.table.rows == {}
    assert sessions.metrics.verdicts_without_session == 1


def test_a_verdict_before_its_session_is_counted_under_at_least_once() -> None:
    sessions = Sessions(settings=ALO)
    sessions.verdict("unknown", "p1", is_first=True)
    assert sessions.producer.sent == []
    assert sessions.table.rows == {}
    metrics = sessions.metrics
    assert (metrics.verdicts_consumed, metrics.verdicts_applied) == (1, 0)
    assert metrics.verdicts_without_session == 1


def test_a_duplicate_event_is_skipped_without_output(sessions: Sessions) -> None:
    sessions.consume(_event("e1"))
    stored = sessions.table.rows[KEY]
    sent = len(sessions.producer.sent)
    sessions.consume(_event("e1", coupon="IGNORED"))
    assert len(sessions.producer.sent) == sent
    assert sessions.table.rows[KEY] == stored
    assert (sessions.metrics.duplicates, sessions.metrics.events_consumed) == (1, 2)


def test_a_rejected_event_goes_to_the_dead_letters_with_its_bytes_and_source(
    sessions: Sessions,
) -> None:
    value = b'{"eventId": "e1", "type": \xff'
    message = sessions.consume(value, key=b"k\xfe")
    [dead] = sessions.producer.sent
    assert dead.topic == SETTINGS.dlq_topic
    assert dead.key == b"k\xfe"  # the key it arrived with
    rejection = decode_rejection(dead.value)
    assert rejection.error.code == "malformed_json"
    assert rejection.event_encoding == "base64"
    assert base64.b64decode(rejection.event) == value
    source = rejection.source
    assert (source.topic, source.partition, source.offset) == (INPUT, 3, message.offset)
    assert source.key == "k\\xfe"
    assert sessions.metrics.rejected == {"malformed_json": 1}
    assert sessions.table.rows == {}


def test_an_event_the_session_refuses_is_dead_lettered_and_changes_nothing(
    sessions: Sessions,
) -> None:
    sessions.consume(_event("e1", state="closed"))
    stored = sessions.table.rows[KEY]
    sessions.producer.sent.clear()
    value = _event("e2", coupon="LATE")
    sessions.consume(value)
    [dead] = sessions.producer.sent
    rejection = decode_rejection(dead.value)
    assert (rejection.error.code, rejection.event) == ("session_locked", value.decode())
    assert sessions.table.rows[KEY] == stored


def test_an_event_without_a_key_is_rekeyed_with_its_coordinates(sessions: Sessions) -> None:
    value = _event("e1")
    message = sessions.consume(value, key=None)
    [rekeyed] = sessions.producer.sent
    assert rekeyed.topic == SETTINGS.rekeyed_topic
    assert (rekeyed.key, rekeyed.value) == (KEY.encode(), value)
    assert rekeyed.headers == [
        ("source-topic", INPUT.encode()),
        ("source-partition", b"3"),
        ("source-offset", str(message.offset).encode()),
    ]
    assert sessions.table.rows == {}
    assert (sessions.metrics.events_consumed, sessions.metrics.applied) == (1, 0)

    # Read back from the re-keyed topic, it is applied like any keyed event.
    sessions.consume(value, topic=SETTINGS.rekeyed_topic, headers=rekeyed.headers)
    assert decode_stored(sessions.table.rows[KEY]).session.update_count == 1
    assert sessions.metrics.applied == 1
    assert sessions.metrics.events_consumed == 1  # counted once, where it entered


def test_a_rekeyed_event_that_is_rejected_names_where_it_was_first_written(
    sessions: Sessions,
) -> None:
    sessions.consume(_event("e1", state="cancelled"))
    sessions.producer.sent.clear()
    value = _event("e2", state="cancelled")
    headers = [("source-topic", INPUT.encode()), ("source-partition", b"5"),
               ("source-offset", b"42")]  # fmt: skip
    sessions.consume(value, topic=SETTINGS.rekeyed_topic, headers=headers)
    [dead] = sessions.producer.sent
    assert dead.key is None  # it arrived without one
    rejection = decode_rejection(dead.value)
    assert rejection.error.code == "invalid_transition"
    assert rejection.event == value.decode()
    source = rejection.source
    assert (source.topic, source.partition, source.offset, source.key) == (INPUT, 5, 42, None)


@dataclass
class Profiles:
    table: FakeTable = field(default_factory=FakeTable)

    @property
    def producer(self) -> FakeProducer:
        return self.table.producer

    def claim(self, integration_id: str, partition: bytes | None) -> ProfileVerdict:
        processor = ProfileProcessor(SETTINGS, self.table, self.table, Metrics(), partitions=8)
        claim = ProfileClaim(322, "p1", integration_id)
        headers = None if partition is None else [(SESSION_PARTITION_HEADER, partition)]
        message = Message(SETTINGS.claims_topic, b"322:p1", encode_claim(claim), 0, 0, headers)
        asyncio.run(processor.handle(message))
        sent = self.producer.sent[-1]
        assert sent.topic == SETTINGS.verdicts_topic
        assert sent.key == integration_id.encode()
        assert sent.partition == (None if partition is None else int(partition))
        return decode_verdict(sent.value)


def test_the_first_claim_of_a_profile_wins_and_each_verdict_goes_to_its_session() -> None:
    profiles = Profiles()
    first = profiles.claim("s1", b"6")
    assert (first.integration_id, first.is_first) == ("s1", True)
    assert profiles.table.rows == {"322:p1": b"s1"}
    later = profiles.claim("s2", b"1")
    assert (later.integration_id, later.is_first) == ("s2", False)
    again = profiles.claim("s1", None)  # a claim made again after a reprocessing
    assert again.is_first is True
    assert profiles.table.rows == {"322:p1": b"s1"}
    assert json.loads(profiles.producer.sent[0].value)["isFirst"] is True


def _samples(metrics: Metrics, name: str) -> dict[tuple[str, ...], float]:
    """The samples of one metric family as rendered on /metrics, by suffix and label values."""
    [family] = [f for f in text_string_to_metric_families(metrics.render()) if f.name == name]
    return {
        (sample.name.removeprefix(name), *sample.labels.values()): sample.value
        for sample in family.samples
    }


def test_the_records_of_each_handled_batch_are_a_histogram_on_metrics(
    sessions: Sessions,
) -> None:
    batch = [Message(INPUT, KEY.encode(), _event(f"e{n}"), offset=n) for n in range(4)]
    asyncio.run(sessions.processor.handle_batch(batch))
    sessions.consume(_event("e4"))  # a single record is a batch of one

    samples = _samples(sessions.metrics, "stream_app_batch_records")
    assert samples[("_count", "sessions")] == 2
    assert samples[("_sum", "sessions")] == 5
    assert samples[("_bucket", "sessions", "1.0")] == 1
    assert samples[("_bucket", "sessions", "2.0")] == 1
    assert samples[("_bucket", "sessions", "5.0")] == 2
    assert samples[("_bucket", "sessions", "+Inf")] == 2
    assert samples[("_count", "profiles")] == 0


def test_the_profile_agent_counts_its_batches_too() -> None:
    metrics = Metrics()
    table = FakeTable()
    processor = ProfileProcessor(SETTINGS, table, table, metrics, partitions=8)
    claims = [
        Message(SETTINGS.claims_topic, b"322:p1", encode_claim(ProfileClaim(322, "p1", f"s{n}")))
        for n in range(3)
    ]
    asyncio.run(processor.handle_batch(claims))

    samples = _samples(metrics, "stream_app_batch_records")
    assert (samples[("_count", "profiles")], samples[("_sum", "profiles")]) == (1, 3)
    assert samples[("_count", "sessions")] == 0


def test_each_dead_letter_is_logged_at_debug_level_only(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stream_app.worker.dead_letters")
    sessions.consume(b"not json")
    assert not caplog.records

    caplog.set_level(logging.DEBUG, logger="stream_app.worker.dead_letters")
    message = sessions.consume(b"not json either")
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    line = record.getMessage()
    assert line.startswith("dead letter malformed_json: ")
    assert f"(source {INPUT}:3@{message.offset}, key '{KEY}')" in line
