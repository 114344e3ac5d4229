"""Kafka clients of the operator commands, all connected from the settings in one place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from stream_app.settings import Settings

#: Largest record the tools read or write: the dead-letter topic's limit.
MAX_RECORD_BYTES = 8 * 1024 * 1024
#: How long to wait for a topic's partitions to appear in the metadata.
METADATA_ATTEMPTS = 50


def client_kwargs(settings: Settings, role: str) -> dict[str, Any]:
    """Connection options shared by every Kafka client the tools create."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.app_id}-{role}",
        **settings.security.client_kwargs(),
    }


def producer(settings: Settings, role: str) -> AIOKafkaProducer:
    """An idempotent producer with the default (murmur2) partitioner, acks from all replicas."""
    return AIOKafkaProducer(
        **client_kwargs(settings, role),
        enable_idempotence=True,
        acks="all",
        linger_ms=10,
        max_batch_size=256 * 1024,
        max_request_size=MAX_RECORD_BYTES,
    )


def reader(settings: Settings, role: str) -> AIOKafkaConsumer:
    """A consumer without a group that reads committed records only, from the beginning."""
    return AIOKafkaConsumer(
        **client_kwargs(settings, role),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_RECORD_BYTES,
        fetch_max_bytes=64 * 1024 * 1024,
    )


class TopicNotFound(LookupError):
    """The topic does not exist (or has no partitions yet)."""


async def partitions_of_topics(
    consumer: AIOKafkaConsumer, topics: Iterable[str], attempts: int = METADATA_ATTEMPTS
) -> list[TopicPartition]:
    """Every partition of `topics`, in order, from fresh metadata.

    Waits (up to `attempts` metadata fetches) for a topic that was just created to show up; a
    topic that never does contributes no partition.
    """
    topics = list(topics)
    found: dict[str, set[int]] = {}
    for _ in range(attempts):
        await consumer._client.force_metadata_update()  # noqa: SLF001
        found = {topic: consumer.partitions_for_topic(topic) or set() for topic in topics}
        if all(found.values()):
            break
        await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for topic in topics for p in sorted(found.get(topic, ()))]


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, from fresh metadata; TopicNotFound when there are none."""
    found = await partitions_of_topics(consumer, [topic])
    if not found:
        raise TopicNotFound(topic)
    return found


async def read_range(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Batches of the records of each partition from its start offset up to its end offset."""
    left = {tp for tp in starts if starts[tp] < ends[tp]}
    if not left:
        return
    consumer.assign(list(left))
    for tp in left:
        consumer.seek(tp, starts[tp])
    while left:
        batch = await consumer.getmany(*left, timeout_ms=500, max_records=10_000)
        for tp, messages in batch.items():
            kept = [m for m in messages if m.offset < ends[tp]]
            if kept:
                yield kept
        for tp in list(left):
            if await consumer.position(tp) >= ends[tp]:
                left.discard(tp)


async def offsets_at(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition], timestamp_ms: int | None
) -> dict[TopicPartition, int]:
    """Per partition, the first offset at or after `timestamp_ms` (the end when none; the
    beginning when `timestamp_ms` is None)."""
    tps = list(tps)
    if timestamp_ms is None:
        return dict(await consumer.beginning_offsets(tps))
    found = await consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms))
    ends = await consumer.end_offsets(tps)
    return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
