"""The commit and both writers, on fakes of Faust and aiokafka and a real temporary RocksDB.

What the drills check in minutes, in milliseconds: what a commit commits (normal, nothing
handled, revoked partitions, refused, failed, final), that it never falls inside a batch, that
changelog offsets are persisted only for what was committed, and in which order each writer
hands records over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from faust.types import TP
from rocksdict import Options, Rdict

from stream_app.worker.metrics import Metrics
from stream_app.worker.overrides.checkpoint import Checkpoint
from stream_app.worker.overrides.tables import LocalTable
from stream_app.worker.overrides.writers import (
    AtLeastOnceWriter,
    ChangelogOffsets,
    ExactlyOnceWriter,
)
from stream_app.worker.ports import Outbox

from .test_sends import FakeClient, FakeMetadata

INPUT = "events"
TP0, TP1 = TP(INPUT, 0), TP(INPUT, 1)


# ----------------------------------------------------------------------------------- fakes


@dataclass
class FakeWriter:
    """The guarantee's writer as the commit sees it: records what it was asked, in order."""

    calls: list[str] = field(default_factory=list)
    committed: list[dict[TP, int]] = field(default_factory=list)
    accept: bool = True
    fail_with: BaseException | None = None
    changelog: ChangelogOffsets = field(default_factory=ChangelogOffsets)
    last_write: tuple[float, float] = (0.0, 0.0)
    batch_records: int = 1

    async def flush(self) -> None:
        self.calls.append("flush")

    async def commit(self, offsets: dict[TP, int], start_new_transaction: bool) -> bool:
        self.calls.append(f"commit new={start_new_transaction}")
        if self.fail_with is not None:
            raise self.fail_with
        self.committed.append(dict(offsets))
        return self.accept

    def committed_partitions(self, offsets: dict[TP, int]) -> set[int]:
        return {tp.partition for tp in offsets}


@dataclass
class FakeConsumer:
    """Faust's consumer, as far as the commit goes."""

    assigned: set[TP] = field(default_factory=lambda: {TP0, TP1})
    should_stop: bool = False
    crashed: bool = False
    _committed_offset: dict[TP, int] = field(default_factory=dict)
    filtered: list[list[TP]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.assigned

    def _filter_committable_offsets(self, tps: list[TP]) -> None:
        self.filtered.append(sorted(tps))


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    should_stop: bool = False
    crashed: bool = False
    monitor_commits: list[dict[TP, int]] = field(default_factory=list)

    @property
    def monitor(self) -> Any:
        return SimpleNamespace(on_tp_commit=self.monitor_commits.append)


def _event(tp: TP, offset: int, acked: list[tuple[TP, int]]) -> Any:
    message = SimpleNamespace(tp=tp, offset=offset)
    return SimpleNamespace(message=message, ack=lambda: acked.append((tp, offset)))


async def _nothing() -> None:
    return None


def _checkpoint(writer: FakeWriter | None = None) -> tuple[Checkpoint, FakeApp, FakeWriter]:
    app, writer = FakeApp(), writer or FakeWriter()
    return Checkpoint(app, writer, Metrics(), INPUT), app, writer


# ---------------------------------------------------------------------------------- commit


def test_a_commit_flushes_then_commits_the_offset_after_each_partitions_last_batch() -> None:
    async def scenario() -> tuple[Checkpoint, FakeApp, FakeWriter, list[Any], bool, bool]:
        checkpoint, app, writer = _checkpoint()
        acked: list[tuple[TP, int]] = []
        for tp, offset in ((TP0, 4), (TP1, 2), (TP0, 9)):
            await checkpoint.handle(_event(tp, offset, acked), _nothing())
        first = await checkpoint.commit()
        again = await checkpoint.commit()  # nothing handled since
        return checkpoint, app, writer, acked, first, again

    checkpoint, app, writer, acked, first, again = asyncio.run(scenario())
    assert acked == [(TP0, 4), (TP1, 2), (TP0, 9)]
    assert (first, again) == (True, False)
    assert writer.calls == ["flush", "commit new=True", "flush"]
    assert writer.committed == [{TP0: 10, TP1: 3}]
    assert checkpoint.handled == {}
    # Faust's own bookkeeping follows what was committed.
    assert app.consumer._committed_offset == {TP0: 10, TP1: 3}
    assert app.consumer.filtered == [[TP0, TP1]]
    assert app.monitor_commits == [{TP0: 10, TP1: 3}]
    # stream_app_commit_seconds: the commit that committed, not the one with nothing to do.
    assert checkpoint.metrics.commits.count == 1


def test_revoked_partitions_are_not_committed() -> None:
    async def scenario() -> FakeWriter:
        checkpoint, app, writer = _checkpoint()
        await checkpoint.handle(_event(TP0, 1, []), _nothing())
        await checkpoint.handle(_event(TP1, 7, []), _nothing())
        app.consumer.assigned = {TP0}
        assert await checkpoint.commit()
        assert checkpoint.handled == {}
        return writer

    assert asyncio.run(scenario()).committed == [{TP0: 2}]


def test_a_commit_never_falls_inside_a_batch() -> None:
    async def scenario() -> list[str]:
        checkpoint, _, writer = _checkpoint()
        order: list[str] = []
        release = asyncio.Event()

        async def batch() -> None:
            order.append("batch started")
            await release.wait()
            order.append("batch done")

        handling = asyncio.ensure_future(checkpoint.handle(_event(TP0, 5, []), batch()))
        await asyncio.sleep(0)
        committing = asyncio.ensure_future(checkpoint.commit())
        await asyncio.sleep(0.01)
        order.append(f"commit done: {committing.done()}")
        release.set()
        await handling
        assert await committing
        order.append(f"committed {writer.committed}")
        return order

    assert asyncio.run(scenario()) == [
        "batch started",
        "commit done: False",
        "batch done",
        f"committed {[{TP0: 6}]}",
    ]


def test_a_refused_commit_keeps_the_offsets_and_makes_the_stop_unclean() -> None:
    async def scenario() -> tuple[Checkpoint, bool]:
        checkpoint, app, writer = _checkpoint(FakeWriter(accept=False))
        await checkpoint.handle(_event(TP0, 3, []), _nothing())
        refused = await checkpoint.commit()
        app.should_stop = True
        writer.accept = True
        await checkpoint.commit(start_new_transaction=False)
        return checkpoint, refused

    checkpoint, refused = asyncio.run(scenario())
    assert refused is False
    assert checkpoint.metrics.commits.count == 1  # the final one; the refused one is not timed
    assert checkpoint.failed
    assert checkpoint.closed
    assert checkpoint.stopped_cleanly is False


def test_a_commit_that_raises_marks_the_checkpoint_failed_and_commits_nothing() -> None:
    async def scenario() -> tuple[Checkpoint, FakeApp]:
        checkpoint, app, _ = _checkpoint(FakeWriter(fail_with=RuntimeError("broker gone")))
        await checkpoint.handle(_event(TP1, 0, []), _nothing())
        with pytest.raises(RuntimeError, match="broker gone"):
            await checkpoint.commit()
        return checkpoint, app

    checkpoint, app = asyncio.run(scenario())
    assert checkpoint.failed
    assert checkpoint.handled == {TP1: 1}  # for the next attempt, or the next worker
    assert app.consumer._committed_offset == {}


def test_the_final_commit_closes_the_checkpoint_and_declares_a_clean_stop() -> None:
    async def scenario() -> tuple[Checkpoint, list[str], bool]:
        checkpoint, app, writer = _checkpoint()
        cleaned: list[str] = []
        checkpoint.on_clean_stop.append(lambda: cleaned.append("tables clean"))
        await checkpoint.handle(_event(TP0, 0, []), _nothing())
        app.should_stop = True
        assert await checkpoint.commit(start_new_transaction=False)
        # After the final commit nothing is handled or committed any more.
        late: Coroutine[Any, Any, None] = _nothing()
        acked: list[tuple[TP, int]] = []
        await checkpoint.handle(_event(TP0, 1, acked), late)
        assert acked == []
        later = await checkpoint.commit()
        assert writer.calls == ["flush", "commit new=False"]
        return checkpoint, cleaned, later

    checkpoint, cleaned, later = asyncio.run(scenario())
    assert checkpoint.closed
    assert checkpoint.stopped_cleanly
    assert cleaned == ["tables clean"]
    assert later is False


def test_a_last_commit_while_the_app_crashed_is_not_a_clean_stop() -> None:
    async def scenario() -> tuple[Checkpoint, list[str]]:
        checkpoint, app, _ = _checkpoint()
        cleaned: list[str] = []
        checkpoint.on_clean_stop.append(lambda: cleaned.append("tables clean"))
        await checkpoint.handle(_event(TP0, 0, []), _nothing())
        app.should_stop = app.crashed = True
        await checkpoint.commit(start_new_transaction=False)
        return checkpoint, cleaned

    checkpoint, cleaned = asyncio.run(scenario())
    assert checkpoint.closed
    assert not checkpoint.stopped_cleanly
    assert cleaned == []


# ------------------------------------------------------------------ tables and changelog


class FakeStore:
    """Faust's RocksDB store as the writers use it: a real database per partition."""

    def __init__(self, root: Path, partitions: int = 2) -> None:
        # Raw mode, as Faust's RocksDB store opens its databases: keys and values are bytes.
        self._dbs = {
            p: Rdict(str(root / f"db-{p}"), Options(raw_mode=True)) for p in range(partitions)
        }
        self.persisted: list[tuple[TP, int]] = []

    offset_key = b"__faust\0offset__"

    def _db_for_partition(self, partition: int) -> Rdict:
        return self._dbs[partition]

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted.append((tp, offset))

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


def _table(store: FakeStore) -> LocalTable:
    topic = SimpleNamespace(get_topic_name=lambda: "app-sessions-changelog")
    faust_table = SimpleNamespace(data=store, changelog_topic=topic)
    return LocalTable(faust_table)


def test_changelog_offsets_are_persisted_only_for_committed_partitions(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    changelog = ChangelogOffsets()
    c0, c1 = TP("app-sessions-changelog", 0), TP("app-sessions-changelog", 1)
    changelog.note(store, c0, 41)
    changelog.note(store, c0, 17)  # an earlier batch acknowledged late: the furthest counts
    changelog.note(store, c1, 5)
    changelog.persist({0})
    assert store.persisted == [(c0, 41)]
    assert changelog.pending() == {c1: 5}
    # A partition revoked meanwhile is not reopened: its offset is dropped.
    del store._dbs[1]
    changelog.persist(None)
    assert store.persisted == [(c0, 41)]
    assert changelog.pending() == {}
    store.close()


def test_a_batch_is_stored_as_one_write_and_its_changelog_records_follow(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    table = _table(store)
    encoded = table.store_batch(1, [("s1", b"v1"), ("s2", b"v2")])
    assert encoded == [(b"s1", b"v1"), (b"s2", b"v2")]
    assert table.get(1, "s2") == b"v2"
    assert table.get(0, "s2") is None
    records = table.changelog_records(1, encoded)
    assert [(r.topic, r.key, r.value, r.partition) for r in records] == [
        ("app-sessions-changelog", b"s1", b"v1", 1),
        ("app-sessions-changelog", b"s2", b"v2", 1),
    ]
    store.close()


def test_a_deleted_key_leaves_the_database_and_is_a_tombstone_on_the_changelog(
    tmp_path: Path,
) -> None:
    store = FakeStore(tmp_path)
    table = _table(store)
    table.store_batch(0, [("s1", b"v1"), ("s2", b"v2")])
    encoded = table.store_batch(0, [("s1", None), ("s3", b"v3")])
    assert (table.get(0, "s1"), table.get(0, "s3")) == (None, b"v3")
    [tombstone, kept] = table.changelog_records(0, encoded)
    assert (tombstone.key, tombstone.value, kept.value) == (b"s1", None, b"v3")
    store.close()


def test_get_many_reads_each_key_s_value_in_order(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    table = _table(store)
    table.store_batch(1, [("s1", b"v1"), ("s2", b"v2")])
    assert table.get_many(1, ["s2", "missing", "s1"]) == [b"v2", None, b"v1"]
    assert table.get_many(0, ["s1"]) == [None]  # another partition's database
    store.close()


def test_a_scan_reads_a_key_range_in_order_and_skips_faust_s_offset_row(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    table = _table(store)
    table.store_batch(0, [(f"k{n}", str(n).encode()) for n in range(5)] + [("Z", b"z")])
    store._db_for_partition(0)[FakeStore.offset_key] = b"41"  # where Faust keeps its offset
    # Z < __faust... < k0: the offset row sits inside the range, and is neither read nor counted.
    rows, following = table.scan(0, "A", "k2", 10)
    assert (rows, following) == ([("Z", b"z"), ("k0", b"0"), ("k1", b"1")], "k2")
    limited, following = table.scan(0, "k1", "k9", 2)  # the limit: where to go on from
    assert ([key for key, _ in limited], following) == (["k1", "k2"], "k3")
    rest, following = table.scan(0, "k3" + "\0", "k9", 10)  # after k3
    assert ([key for key, _ in rest], following) == (["k4"], None)
    empty, following = table.scan(0, "k", "k0", 10)  # nothing below the stop: one seek
    assert (empty, following) == ([], "k0")
    store.close()


# ----------------------------------------------------------------------------------- writers


@dataclass
class RecordingProducer:
    """aiokafka's producer for `send_records`; acknowledgements resolved when told to."""

    log: list[tuple[str, int, list[bytes]]] = field(default_factory=list)
    pending: list[asyncio.Future[Any]] = field(default_factory=list)
    auto_ack: bool = True
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    flushed: int = 0
    transaction_calls: list[str] = field(default_factory=list)
    fenced: bool = False
    client: FakeClient = field(default_factory=FakeClient)
    _metadata: FakeMetadata = field(default_factory=FakeMetadata)

    def _partitioner(self, key: bytes | None, all_partitions: Any, available: Any) -> int:
        return 0

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16 * 1024, 0, is_transactional=False)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        values = [r.value for r in DefaultRecordBatch(bytes(builder._build()))]
        self.log.append((topic, partition, values))
        base = self.offsets.get((topic, partition), 0)
        self.offsets[topic, partition] = base + len(values)
        future = asyncio.get_running_loop().create_future()
        metadata = SimpleNamespace(offset=base)
        if self.auto_ack:
            future.set_result(metadata)
        else:
            self.pending.append(future)
            future.metadata = metadata  # type: ignore[attr-defined]
        return future

    def acknowledge_all(self) -> None:
        for future in self.pending:
            future.set_result(future.metadata)  # type: ignore[attr-defined]
        self.pending.clear()

    async def flush(self) -> None:
        self.flushed += 1

    async def send_offsets_to_transaction(self, offsets: dict[TP, int], group: str) -> None:
        if self.fenced:
            raise ProducerFenced()
        self.transaction_calls.append(f"offsets {sorted(offsets.values())} {group}")

    async def commit_transaction(self) -> None:
        self.transaction_calls.append("commit")

    async def begin_transaction(self) -> None:
        self.transaction_calls.append("begin")


def _message(partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=INPUT, partition=partition, offset=offset)


def _outbox(*values: bytes) -> Outbox:
    outbox = Outbox()
    for value in values:
        outbox.send("snapshots", b"k", value)
    return outbox


def _eos_app(producers: dict[str, RecordingProducer]) -> Any:
    crashes: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    faust_producer = SimpleNamespace(
        _transaction_producers=producers, _trn_locks={tid: asyncio.Lock() for tid in producers}
    )
    return SimpleNamespace(
        conf=SimpleNamespace(id="app"),
        assignor=SimpleNamespace(group_for_topic=lambda topic: 0),
        producer=faust_producer,
        crash=crash,
        crashes=crashes,
    )


def test_exactly_once_writes_a_batch_into_its_source_partitions_transaction(
    tmp_path: Path,
) -> None:
    store = FakeStore(tmp_path)
    producers = {"app-0-0": RecordingProducer(), "app-0-1": RecordingProducer()}

    async def scenario() -> ExactlyOnceWriter:
        writer = ExactlyOnceWriter(_eos_app(producers), ChangelogOffsets(), Metrics())
        batches = writer.for_table(_table(store))
        await batches.write(_message(1, 30), _outbox(b"out-1", b"out-2"), [("s1", b"state")])
        await asyncio.sleep(0)  # the delivery callbacks
        return writer

    writer = asyncio.run(scenario())
    assert producers["app-0-0"].log == []
    assert producers["app-0-1"].log == [
        ("snapshots", 0, [b"out-1", b"out-2"]),  # outputs first, then the changelog
        ("app-sessions-changelog", 1, [b"state"]),
    ]
    assert _table(store).get(1, "s1") == b"state"
    assert writer.changelog.pending() == {TP("app-sessions-changelog", 1): 0}
    store.close()


def test_exactly_once_commits_every_partitions_transaction_and_begins_the_next() -> None:
    producers = {"app-0-0": RecordingProducer(), "app-0-1": RecordingProducer()}

    async def scenario() -> tuple[bool, set[int] | None]:
        writer = ExactlyOnceWriter(_eos_app(producers), ChangelogOffsets(), Metrics())
        offsets = {TP0: 5, TP1: 9}
        return await writer.commit(offsets, True), writer.committed_partitions(offsets)

    committed, partitions = asyncio.run(scenario())
    assert committed
    assert partitions == {0, 1}
    assert producers["app-0-0"].transaction_calls == ["offsets [5] app", "commit", "begin"]
    assert producers["app-0-1"].transaction_calls == ["offsets [9] app", "commit", "begin"]


def test_a_fenced_producer_crashes_the_app_and_commits_nothing() -> None:
    producers = {"app-0-0": RecordingProducer(fenced=True)}
    app = _eos_app(producers)

    async def scenario() -> bool:
        return await ExactlyOnceWriter(app, ChangelogOffsets(), Metrics()).commit({TP0: 1}, True)

    assert asyncio.run(scenario()) is False
    assert [type(exc) for exc in app.crashes] == [ProducerFenced]
    assert producers["app-0-0"].transaction_calls == []


def test_at_least_once_sends_the_changelog_only_after_its_outputs_are_acknowledged(
    tmp_path: Path,
) -> None:
    store = FakeStore(tmp_path)
    producer = RecordingProducer(auto_ack=False)
    committed: list[dict[TP, int]] = []

    async def consumer_commit(offsets: dict[TP, int]) -> bool:
        committed.append(offsets)
        return True

    faust_producer = SimpleNamespace(_ensure_producer=lambda: producer)

    async def maybe_start_producer() -> Any:
        return faust_producer

    app = SimpleNamespace(
        maybe_start_producer=maybe_start_producer,
        consumer=SimpleNamespace(_commit=consumer_commit),
    )
    metrics = Metrics()

    async def scenario() -> list[list[str]]:
        writer = AtLeastOnceWriter(app, ChangelogOffsets(), metrics)
        batches = writer.for_table(_table(store))
        seen = []
        await batches.write(_message(0, 3), _outbox(b"out"), [("s1", b"state")])
        await asyncio.sleep(0.01)
        seen.append([topic for topic, _, _ in producer.log])
        producer.acknowledge_all()  # the output is in Kafka: its changelog record may follow
        flushing = asyncio.ensure_future(writer.flush())
        await asyncio.sleep(0.01)
        seen.append([topic for topic, _, _ in producer.log])
        producer.acknowledge_all()
        await flushing
        await asyncio.sleep(0)  # the changelog's delivery callback
        assert producer.flushed == 1
        assert await writer.commit({TP0: 4}, True)
        assert writer.committed_partitions({TP0: 4}) is None
        assert writer.changelog.pending() == {TP("app-sessions-changelog", 0): 0}
        return seen

    before, after = asyncio.run(scenario())
    # Delivered once the output was acknowledged, for the batch's one input record.
    assert metrics.stages["deliver"].count == 1
    assert before == ["snapshots"]
    assert after == ["snapshots", "app-sessions-changelog"]
    assert committed == [{TP0: 4}]
    store.close()


def test_a_handled_batch_records_where_its_time_went(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 100.5, 103.0])  # waiting, locked; spare
    monkeypatch.setattr("stream_app.worker.overrides.checkpoint.time.time", lambda: next(clock))

    async def scenario() -> Metrics:
        checkpoint, _, writer = _checkpoint()
        records = [SimpleNamespace(timestamp=99.0), SimpleNamespace(timestamp=99.8)]
        message = SimpleNamespace(
            tp=TP0, topic=INPUT, offset=7, records=records, handed_over_at=99.9
        )
        event = SimpleNamespace(message=message, ack=lambda: None)

        async def work() -> None:
            assert writer.batch_records == 2
            writer.last_write = (100.6, 100.7)

        await checkpoint.handle(event, work())
        await checkpoint.commit()
        return checkpoint.metrics

    stages = asyncio.run(scenario()).stages
    observed = {name: (h.count, round(h.total, 3)) for name, h in stages.items()}
    assert observed == {
        "fetch": (2, round(0.9 + 0.1, 3)),  # per record: producer timestamp -> handed over
        "queue": (2, 0.2),  # handed over at 99.9, waiting from 100.0
        "lock": (2, 1.0),  # the lock taken at 100.5
        "apply": (2, 0.2),  # until the write began at 100.6
        "write": (2, 0.2),
        "deliver": (0, 0.0),  # the writer's to measure (next test)
    }


def test_exactly_once_records_are_delivered_when_the_commit_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStore(tmp_path)
    producers = {"app-0-1": RecordingProducer()}
    clock = iter([100.6, 100.7, 101.0])  # the write's start and end; after the commit
    monkeypatch.setattr("stream_app.worker.overrides.writers.time.time", lambda: next(clock))

    async def scenario() -> Metrics:
        metrics = Metrics()
        writer = ExactlyOnceWriter(_eos_app(producers), ChangelogOffsets(), metrics)
        writer.batch_records = 2
        await writer.for_table(_table(store)).write(_message(1, 30), _outbox(b"out"), [])
        assert metrics.stages["deliver"].count == 0  # not visible before the commit
        assert await writer.commit({TP1: 31}, True)
        return metrics

    deliver = asyncio.run(scenario()).stages["deliver"]
    assert (deliver.count, round(deliver.total, 3)) == (2, 0.6)  # committed 0.3 s after
    store.close()


def test_a_batch_written_to_two_tables_is_one_write_and_one_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStore(tmp_path)
    producers = {"app-0-1": RecordingProducer()}
    # The sessions' write, the expiry index's write, then after the commit.
    clock = iter([100.0, 100.2, 100.3, 100.5, 101.0])
    monkeypatch.setattr("stream_app.worker.overrides.writers.time.time", lambda: next(clock))

    async def scenario() -> tuple[Metrics, tuple[float, float]]:
        metrics = Metrics()
        writer = ExactlyOnceWriter(_eos_app(producers), ChangelogOffsets(), metrics)
        writer.batch_records = 2
        source = _message(1, 30)
        await writer.for_table(_table(store)).write(source, _outbox(b"out"), [])
        await writer.for_table(_table(store)).write(source, Outbox(), [])
        spans = writer.last_write
        assert await writer.commit({TP1: 31}, True)
        return metrics, spans

    metrics, spans = asyncio.run(scenario())
    assert spans == (100.0, 100.5)  # the write stage spans both tables
    deliver = metrics.stages["deliver"]
    assert (deliver.count, round(deliver.total, 3)) == (2, 1.0)  # once per record, from the last
    store.close()
