"""The batching consumer's pause and resume reach the aiokafka consumer, not only Faust."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from faust.types import TP

from stream_app.settings import Settings
from stream_app.worker.app import create_worker
from stream_app.worker.overrides.batching import BatchingConsumer, records_of


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


def _record(topic: str, partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 1_700_000_000_000 + offset, 0, b"k",
                          f"v{offset}".encode(), None, 1, 2, ())  # fmt: skip


def _getmany(
    tmp_path: Path, records: dict[TP, list[Any]], max_batch: int, read: dict[TP, int]
) -> tuple[list[tuple[TP, Any]], dict[TP, int | None]]:
    settings = Settings.from_env(
        {"STREAM_APP_DATA_DIR": str(tmp_path), "STREAM_APP_MAX_BATCH": str(max_batch)}
    )

    async def scenario() -> tuple[list[tuple[TP, Any]], dict[TP, int | None]]:
        consumer = create_worker(settings, partitions=2).app.consumer
        assert isinstance(consumer, BatchingConsumer)
        consumer._thread.thread_loop.close()
        consumer._thread = SimpleNamespace(highwater=lambda tp: 1000)

        async def fetched(timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:
            return records, set(records)

        consumer._wait_next_records = fetched  # type: ignore[method-assign]
        consumer.can_resume_flow.set()
        consumer.suspend_flow.clear()
        for tp, offset in read.items():
            consumer._read_offset[tp] = offset
        out = [item async for item in consumer.getmany(timeout=1.0)]
        return out, {tp: consumer._read_offset[tp] for tp in records}

    return asyncio.run(scenario())


def test_getmany_yields_one_batch_per_partition_of_at_most_max_batch_records(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)})
    events, claims = TP(settings.input_topic, 0), TP(settings.claims_topic, 1)
    records = {
        events: [_record(events.topic, 0, n) for n in range(10, 15)],
        claims: [_record(claims.topic, 1, n) for n in range(3)],
    }
    out, read = _getmany(tmp_path, records, max_batch=2, read={events: 9, claims: -1})
    batches = [(tp, [r.offset for r in records_of(message)], message.offset) for tp, message in out]
    # In order, at most two records each; a batch stands for its last record in Faust.
    assert batches == [
        (events, [10, 11], 11), (events, [12, 13], 13), (events, [14], 14),
        (claims, [0, 1], 1), (claims, [2], 2),
    ]  # fmt: skip
    first = records_of(out[0][1])[0]
    assert (first.key, first.value, first.timestamp) == (b"k", b"v10", 1_700_000_000.01)
    # The records before each batch's last are marked read: Faust sees no offset gap. The
    # drain loop (not run here) marks the batch's own offset once it has handed it over.
    assert read == {events: 13, claims: 1}


def test_getmany_hands_records_of_other_topics_over_one_by_one(tmp_path: Path) -> None:
    changelog = TP("some-changelog", 0)
    out, _ = _getmany(
        tmp_path, {changelog: [_record(changelog.topic, 0, n) for n in range(3)]}, 500, {}
    )
    assert [(tp, message.offset, records_of(message)) for tp, message in out] == [
        (changelog, n, [message]) for n, (_, message) in zip(range(3), out, strict=True)
    ]
