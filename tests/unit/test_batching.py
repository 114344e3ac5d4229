"""The batching consumer's pause and resume reach the aiokafka consumer, not only Faust."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from aiokafka import TopicPartition
from faust.types import TP

from stream_app.settings import Settings
from stream_app.worker.app import create_worker
from stream_app.worker.overrides.batching import BatchingConsumer


class FakeClient:
    """The aiokafka consumer as far as pausing goes: an assignment and the paused set."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def pause(self, *tps: TopicPartition) -> None:
        assert all(tp in self.assigned for tp in tps), "aiokafka refuses unassigned partitions"
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)


def test_a_paused_partition_is_not_fetched_until_it_is_resumed(tmp_path: Path) -> None:
    settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)})
    client = FakeClient({TopicPartition("changelog", 0), TopicPartition("changelog", 1)})

    async def scenario() -> list[set[TopicPartition]]:
        consumer = create_worker(settings, partitions=2).app.consumer
        assert isinstance(consumer, BatchingConsumer)
        # The aiokafka consumer lives on Faust's consumer thread and its loop (here: this one;
        # the thread Faust prepared, never started, gives its loop back).
        consumer._thread.thread_loop.close()
        consumer._thread = SimpleNamespace(_consumer=client, thread_loop=asyncio.get_running_loop())
        seen = []
        consumer.pause_partitions({TP("changelog", 0), TP("changelog", 1), TP("gone", 3)})
        await asyncio.sleep(0)
        seen.append(set(client.paused))
        assert TP("changelog", 0) not in consumer._get_active_partitions()
        consumer.resume_partitions({TP("changelog", 1)})
        await asyncio.sleep(0)
        seen.append(set(client.paused))
        assert TP("changelog", 1) in consumer._get_active_partitions()
        return seen

    paused, after_resume = asyncio.run(scenario())
    assert paused == {TopicPartition("changelog", 0), TopicPartition("changelog", 1)}
    assert after_resume == {TopicPartition("changelog", 0)}
