"""A batch's records go to aiokafka as whole record batches, one per destination partition.

Faust sends record by record: `Producer.send` (faust/transport/drivers/aiokafka.py), then
aiokafka's `AIOKafkaProducer.send`, which per record waits on metadata, runs the partitioner,
finds or opens an accumulator batch and creates a delivery future; a table write adds Faust's
buffer task, `Topic.publish_message` and a callback per changelog record. On this workload
that was the largest share of the worker's CPU (docs/performance.md). Here the records a
batch of input produced are grouped by destination partition, in the order they were added,
and each group is appended to one aiokafka `BatchBuilder` and handed over with `send_batch`:
per record only an append; per partition one future.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from aiokafka.partitioner import DefaultPartitioner

from stream_app.worker.ports import OutputRecord

#: Largest record batch a producer builds (Faust's `producer_max_batch_size`). A partition's
#: share of one input batch should fit in one: aiokafka has one request in flight per
#: partition, so a second batch for it waits for the first one's acknowledgement. It stays
#: below the broker's default `message.max.bytes` (1 MiB).
MAX_RECORD_BATCH_BYTES = 512 * 1024


class SentBatch(NamedTuple):
    """One record batch handed to the producer: `delivered` gives its first record's offset."""

    delivered: asyncio.Future[Any]
    records: int


async def send_records(producer: Any, records: Sequence[OutputRecord]) -> list[SentBatch]:
    """Hand `records` to an aiokafka producer, as one record batch per partition.

    Records without a partition go where aiokafka's own partitioner would send them (the
    murmur2 hash of the key, as Kafka's Java clients). Per partition, order is kept. Under a
    transactional producer the records join its current transaction, as with `send`.
    """
    groups: dict[tuple[str, int], list[OutputRecord]] = {}
    partitioners: dict[str, Callable[[bytes | None], int]] = {}
    for record in records:
        partition = record.partition
        if partition is None:
            choose = partitioners.get(record.topic)
            if choose is None:
                choose = partitioners[record.topic] = await _partitioner(producer, record.topic)
            partition = choose(record.key)
        group = groups.get((record.topic, partition))
        if group is None:
            groups[record.topic, partition] = [record]
        else:
            group.append(record)
    sent: list[SentBatch] = []
    for (topic, partition), group in groups.items():
        builder = producer.create_batch()
        for record in group:
            if (
                builder.append(
                    timestamp=None, key=record.key, value=record.value, headers=record.headers
                )
                is None
            ):
                sent.append(await _submit(producer, builder, topic, partition))
                builder = producer.create_batch()
                # An empty batch takes any record, however large.
                builder.append(
                    timestamp=None, key=record.key, value=record.value, headers=record.headers
                )
        sent.append(await _submit(producer, builder, topic, partition))
    return sent


async def _submit(producer: Any, builder: Any, topic: str, partition: int) -> SentBatch:
    count = builder.record_count()
    # A closed batch is sent without waiting out the producer's linger time: it is complete.
    builder.close()
    delivered = await producer.send_batch(builder, topic, partition=partition)
    return SentBatch(delivered, count)


async def _partitioner(producer: Any, topic: str) -> Callable[[bytes | None], int]:
    """The partition aiokafka's `send` would pick for a key of `topic` (memoized per key)."""
    await producer.client._wait_on_metadata(topic)  # noqa: SLF001
    metadata = producer._metadata  # noqa: SLF001
    all_partitions = list(metadata.partitions_for_topic(topic))
    available = list(metadata.available_partitions_for_topic(topic))
    partitioner = producer._partitioner  # noqa: SLF001
    chosen: dict[bytes, int] = {}
    default = isinstance(partitioner, DefaultPartitioner)

    def choose(key: bytes | None) -> int:
        if key is None:
            return int(partitioner(None, all_partitions, available))
        try:
            return chosen[key]
        except KeyError:
            if default:  # the same choice, at half the cost of aiokafka's murmur2
                partition = int(all_partitions[key_partition(key, len(all_partitions))])
            else:
                partition = int(partitioner(key, all_partitions, available))
            chosen[key] = partition
            return partition

    return choose


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
#: Unpackers of n little-endian 32-bit words, for keys of up to 255 bytes.
_WORDS = [struct.Struct(f"<{n}I").unpack_from for n in range(64)]


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key among `partitions` (murmur2)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (Java's `Utils.murmur2`), as aiokafka's `murmur2` computes it.

    aiokafka's version assembles each 32-bit word from four bytes in Python; here the words
    are unpacked in one call (tests/unit/test_sends.py checks the two agree).
    """
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    unpack = _WORDS[words] if words < len(_WORDS) else struct.Struct(f"<{words}I").unpack_from
    for k in unpack(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)
