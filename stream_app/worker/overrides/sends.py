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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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

    def choose(key: bytes | None) -> int:
        if key is None:
            return int(partitioner(None, all_partitions, available))
        try:
            return chosen[key]
        except KeyError:
            partition = chosen[key] = int(partitioner(key, all_partitions, available))
            return partition

    return choose
