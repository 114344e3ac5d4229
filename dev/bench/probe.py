"""What the benchmark reads from the broker: committed offsets, end offsets, record timestamps,
record counts and partition sizes on disk."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from dev import ROOT
from dev.harness.kafka import client_security, topic_partitions


class Probe:
    """One admin client and one offset-reading consumer, kept open while a run is polled."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            **client_security(),
        )
        self._partitions: dict[str, list[TopicPartition]] = {}
        self._coordinators: dict[str, int] = {}

    async def __aenter__(self) -> Probe:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The partitions of a topic (waits for its metadata)."""
        if topic not in self._partitions:
            for _ in range(50):
                found = self.consumer.partitions_for_topic(topic)
                if found:
                    self._partitions[topic] = [TopicPartition(topic, p) for p in sorted(found)]
                    break
                await self.consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"topic {topic!r} has no metadata")
        return self._partitions[topic]

    async def end_offsets(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """Last stable offsets (what a read_committed reader can reach) of every partition."""
        tps = [tp for topic in topics for tp in await self.partitions(topic)]
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(tps)
        return ends

    async def committed(self, group: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """The group's committed offset of every partition of `topics` (0 when none)."""
        tps = [tp for topic in topics for tp in await self.partitions(topic)]
        if group not in self._coordinators:
            self._coordinators[group] = await self.admin.find_coordinator(group)
        found = await self.admin.list_consumer_group_offsets(
            group, self._coordinators[group], partitions=tps
        )
        return {tp: max(0, found[tp].offset) if tp in found else 0 for tp in tps}


async def first_timestamp(bootstrap: str, topics: Iterable[str]) -> float | None:
    """Producer timestamp (s) of the earliest first record of the topics' partitions."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_uncommitted",
        enable_auto_commit=False,
        **client_security(),
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        waiting = {tp for tp in tps if ends[tp] > begins[tp]}
        if not waiting:
            return None
        consumer.assign(sorted(waiting))
        await consumer.seek_to_beginning(*waiting)
        earliest: float | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while waiting and loop.time() < deadline:
            batch = await consumer.getmany(*waiting, timeout_ms=500, max_records=1)
            for tp, messages in batch.items():
                if messages:
                    stamp = messages[0].timestamp / 1000
                    earliest = stamp if earliest is None else min(earliest, stamp)
                    waiting.discard(tp)
                    consumer.pause(tp)
        return earliest
    finally:
        await consumer.stop()


def broker_log_dirs() -> list[Path]:
    """The local broker's log.dirs (from deploy/kafka's rendered server.properties), if any."""
    data_dir = Path(os.environ.get("KAFKA_DATA_DIR", ROOT / ".local" / "kafka"))
    try:
        lines = (data_dir / "server.properties").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.startswith("log.dirs="):
            return [Path(entry) for entry in line.split("=", 1)[1].split(",") if entry]
    return []


def topic_bytes_on_disk(topic: str) -> int | None:
    """Sum of the topic's segment files (*.log) in the local broker's log dirs, if it is local."""
    dirs = broker_log_dirs()
    total = 0
    found = False
    for log_dir in dirs:
        for partition_dir in log_dir.glob(f"{topic}-*"):
            suffix = partition_dir.name[len(topic) + 1 :]
            if not suffix.isdigit():
                continue
            found = True
            total += sum(segment.stat().st_size for segment in partition_dir.glob("*.log"))
    return total if found else None
