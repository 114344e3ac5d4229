"""Bulk produce and read-to-the-end helpers on a real broker (aiokafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topic(bootstrap: str, name: str, partitions: int, **configs: str) -> None:
    """Create a topic (error if it exists: callers use fresh names)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or None)])
    finally:
        await admin.close()


async def produce_all(
    bootstrap: str, topic: str, records: Iterable[tuple[str | bytes | None, bytes]]
) -> int:
    """Send every (key, value) in order with an idempotent producer; return the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=10,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    count = 0
    try:
        for key, value in records:
            raw_key = key.encode() if isinstance(key, str) else key
            await producer.send(topic, value, key=raw_key)
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of `topics`, in order, from freshly fetched metadata."""
    await consumer._client.force_metadata_update()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The last stable offset of each partition (what a read_committed reader can reach)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, [topic])
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, idle_seconds: float = 2.0) -> list[Any]:
    """Every committed record of a topic, read until the end offsets and then idle for a moment."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        tps = await topic_partitions(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            for messages in batch.values():
                records.extend(messages)
            if batch:
                quiet_since = loop.time()
            done = all([await consumer.position(tp) >= ends[tp] for tp in tps])
            if done and loop.time() - quiet_since >= min(idle_seconds, 0.5):
                break
            if not batch and loop.time() - quiet_since > idle_seconds:
                break
    finally:
        await consumer.stop()
    return records
