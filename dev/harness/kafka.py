"""Kafka helpers on a real broker (aiokafka): the broker address, topics, bulk produce, reading.

One of each: `bootstrap_from_env` (the worker's own parsing and default), `client_security`
(the STREAM_APP_* security settings as aiokafka options, used by every client here), `create_topic`,
`delete_topics` (a run's topics, by prefix), `produce_all`, `topic_partitions` and
`read_to_end` (every committed record of some topics, up to their end offsets), with
`read_all` and `count_records` on top of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_app.kafka_security import KafkaSecurity
from stream_app.settings import SECURITY_ENV, Settings
from stream_app.tools.kafka import partitions_of_topics, read_range

log = logging.getLogger(__name__)

Record = tuple[str | bytes | None, bytes]


def bootstrap_from_env(environ: Mapping[str, str] | None = None) -> str:
    """host:port list of STREAM_APP_BROKER, parsed and defaulted exactly as the worker does."""
    env = os.environ if environ is None else environ
    broker = env.get("STREAM_APP_BROKER", "")
    return Settings.from_env({"STREAM_APP_BROKER": broker}).bootstrap


def security_from_env(environ: Mapping[str, str] | None = None) -> KafkaSecurity:
    """The STREAM_APP_* security settings of the environment, read as the worker reads them."""
    env = os.environ if environ is None else environ
    security = {name: value for name, value in env.items() if name in SECURITY_ENV}
    return Settings.from_env(security).security


def client_security(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """aiokafka options of the STREAM_APP_* security settings in the environment."""
    return security_from_env(environ).client_kwargs()


def raw_key(key: str | bytes | None) -> bytes | None:
    """A record key as bytes (str keys are UTF-8)."""
    return key.encode() if isinstance(key, str) else key


async def create_topic(bootstrap: str, name: str, partitions: int, **configs: str) -> None:
    """Create a topic (error if it exists: callers use fresh names)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or None)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a run's own topics); never raises.

    Returns the names it asked the broker to delete (none when the broker was unreachable:
    leftover topics are harmless, and cleanup must not hide the run's own result).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    try:
        await admin.start()
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    except Exception as exc:
        log.warning("could not delete the topics %s*: %r", prefix, exc)
        return []
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def produce_all(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    """Send every (key, value) in order with an idempotent producer; return the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=10,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        **client_security(),
    )
    await producer.start()
    count = 0
    try:
        for key, value in records:
            await producer.send(topic, value, key=raw_key(key))
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


#: Every partition of some topics, from fresh metadata (the operator tools' own helper).
topic_partitions = partitions_of_topics


def reader(bootstrap: str, **options: Any) -> AIOKafkaConsumer:
    """A group-less read_committed consumer that reads from the beginning."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **{**client_security(), **options},
    )


async def read_to_end(bootstrap: str, topics: Iterable[str]) -> AsyncIterator[list[Any]]:
    """Batches of every committed record of `topics`, from the beginning to the end offsets.

    The end is each partition's last stable offset when reading starts (what a read_committed
    reader can reach then). The reading is the operator tools' (`read_range`).
    """
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        tps = await partitions_of_topics(consumer, topics)
        if not tps:
            return
        starts = dict(await consumer.beginning_offsets(tps))
        ends = dict(await consumer.end_offsets(tps))
        async for batch in read_range(consumer, starts, ends):
            yield batch
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of a topic (aiokafka ConsumerRecords), up to its end offsets."""
    records: list[Any] = []
    async for batch in read_to_end(bootstrap, [topic]):
        records.extend(batch)
    return records


async def count_records(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Committed records of each topic, read to the end (transaction markers are not counted)."""
    topics = list(topics)
    counts = dict.fromkeys(topics, 0)
    async for batch in read_to_end(bootstrap, topics):
        counts[batch[0].topic] += len(batch)
    return counts
