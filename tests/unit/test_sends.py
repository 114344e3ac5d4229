"""A batch's records leave as one aiokafka record batch per partition, in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.worker.overrides.sends import murmur2, send_records
from stream_app.worker.ports import Outbox

PARTITIONS = 8


class FakeMetadata:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))


class FakeClient:
    async def _wait_on_metadata(self, topic: str) -> None:
        return None


@dataclass
class FakeProducer:
    """aiokafka's AIOKafkaProducer as far as `send_records` uses it, with real record batches."""

    batch_size: int = 16 * 1024
    submitted: list[tuple[str, int, list[tuple[bytes | None, bytes, list[Any]]]]] = field(
        default_factory=list
    )
    client: FakeClient = field(default_factory=FakeClient)
    _metadata: FakeMetadata = field(default_factory=FakeMetadata)
    _partitioner: DefaultPartitioner = field(default_factory=DefaultPartitioner)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0, is_transactional=False)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        assert builder.closed(), "a complete batch is sent without lingering"
        records = [
            (r.key, r.value, list(r.headers)) for r in DefaultRecordBatch(bytes(builder._build()))
        ]
        self.submitted.append((topic, partition, records))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _send(producer: FakeProducer, outbox: Outbox) -> list[int]:
    sent = asyncio.run(send_records(producer, outbox.records))
    return [batch.records for batch in sent]


def _hashed(key: bytes) -> int:
    return int(DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS))))


def test_records_are_grouped_per_partition_in_the_order_they_were_added() -> None:
    outbox = Outbox()
    outbox.send("snapshots", b"s1", b"s1 v1")
    outbox.send("transitions", b"s1", b"s1 open")
    outbox.send("snapshots", b"s2", b"s2 v1", headers=[("h", b"1")])
    outbox.send("snapshots", b"s1", b"s1 v2")
    outbox.send("verdicts", b"s9", b"verdict", partition=6)

    counts = _send(producer := FakeProducer(), outbox)

    by_partition = {(topic, p): records for topic, p, records in producer.submitted}
    assert ("verdicts", 6) in by_partition
    assert by_partition["verdicts", 6] == [(b"s9", b"verdict", [])]
    s1 = by_partition["snapshots", _hashed(b"s1")]
    assert [value for key, value, _ in s1 if key == b"s1"] == [b"s1 v1", b"s1 v2"]
    assert (b"s2", b"s2 v1", [("h", b"1")]) in by_partition["snapshots", _hashed(b"s2")]
    assert by_partition["transitions", _hashed(b"s1")] == [(b"s1", b"s1 open", [])]
    assert sum(counts) == 5
    assert len(producer.submitted) == len(by_partition)  # one record batch per partition


def test_a_full_record_batch_is_sent_and_the_rest_follow_in_order() -> None:
    outbox = Outbox()
    values = [bytes([n]) * 300 for n in range(10)]
    for value in values:
        outbox.send("changelog", b"k", value, partition=2)
    big = b"x" * 5000  # larger than a whole batch: goes alone
    outbox.send("changelog", b"k", big, partition=2)

    counts = _send(producer := FakeProducer(batch_size=1024), outbox)

    assert {(topic, p) for topic, p, _ in producer.submitted} == {("changelog", 2)}
    assert [v for _, _, records in producer.submitted for _, v, _ in records] == [*values, big]
    assert len(producer.submitted) > 2
    assert counts == [len(records) for _, _, records in producer.submitted]


@settings(max_examples=2000)
@given(st.binary(max_size=600))
def test_murmur2_is_aiokafka_s_kafka_hash(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_keys_land_where_aiokafka_s_partitioner_sends_them() -> None:
    keys = [f"S{n:07d}-{n * 7919 % 16**6:06x}".encode() for n in range(2000)] + [b"", b"a" * 300]
    outbox = Outbox()
    for key in keys:
        outbox.send("snapshots", key, b"v")
    _send(producer := FakeProducer(), outbox)
    landed = {key: p for _, p, records in producer.submitted for key, _, _ in records}
    assert landed == {key: _hashed(key) for key in keys}
