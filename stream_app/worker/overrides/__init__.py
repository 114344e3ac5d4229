"""Everything that replaces a part of faust-streaming's own machinery, in one package.

Faust stays the framework (app, agents, tables, group membership, rebalances, web, CLI); these
modules replace the parts of it that exactly-once outputs, crash recovery and speed could not
live with. Each was written and drilled against faust-streaming 0.15.3, which is pinned, and
the worker refuses to start on another version (`check_faust_version`). The full account, with
what the drills found: docs/design.md, "Where the worker replaces Faust's machinery".

What each module replaces (faust-streaming 0.15.3), and why:

- checkpoint.py `Checkpoint`: `Consumer.commit` and the commit paths behind it
  (faust/transport/consumer.py: `commit`, `force_commit`, `_commit_tps`, `_commit_offsets`).
  What a commit does, step by step, in one docstring; a commit never falls in the middle of a
  batch and carries only handled batches.
- writers.py `ExactlyOnceWriter`, `AtLeastOnceWriter`, `ChangelogOffsets`: Faust's table write
  path (`Table.__setitem__`/`on_key_set`, `Collection.send_changelog` and
  `_on_changelog_sent`, faust/tables/base.py; the `ProducerBuffer`, faust/transport/
  producer.py), `TransactionManager.send` and `.commit` (faust/transport/consumer.py) and
  `TableManager.on_commit`/`persist_offset_on_commit` (faust/tables/manager.py). One writer per
  guarantee; changelog offsets kept in one place and persisted by the commit.
- tables.py `LocalTable`: `Table.__getitem__` (three RocksDB calls per read) and key-by-key
  writes. One MultiGet for a batch's sessions, one RocksDB write batch per input batch.
- batching.py `BatchingConsumer`: `Consumer.getmany`, `pause_partitions` and
  `resume_partitions` (faust/transport/consumer.py). One Faust event per fetched partition
  batch (Faust's per-record path cost ten times the processing), with no offset gaps between
  batches; a paused partition is paused in aiokafka too, so it is not fetched and left there.
- sends.py `send_records`: `Producer.send` (faust/transport/drivers/aiokafka.py) and
  aiokafka's per-record `send`. A batch's records leave as one record batch per partition.
- changelog.py `ChangelogFence`: new (Faust sends changelog records and outputs unordered).
  Under at_least_once a changelog record must not reach Kafka before its event's outputs.
- transactions.py `SourcePartitionTransactionManager`: `TransactionManager.on_rebalance`
  (faust/transport/consumer.py); fenced producers are replaced. It also makes the consumer's
  commit the checkpoint's. `TransactionalProducer`: `Producer._settings_extra`
  (faust/transport/drivers/aiokafka.py); transactional producers retry after 20 ms.
  `retry_lost_coordinator_lookups`: aiokafka's `Sender._find_coordinator`, which fails the
  producer when the broker closes the connection during a coordinator lookup.
- recovery.py `ExactRecovery`, `StreamTableManager`: `Recovery` (faust/tables/recovery.py).
  Exact end offsets, no early give-up, no dropped records, no holes after rebalances.
- local_state.py: new. RocksDB can hold writes of aborted transactions after a crash, so the
  tables are rebuilt from the changelog; one live worker per data directory.
- membership.py: new (aiokafka knows LeaveGroup v0-v1 only), and `StaticMemberAssignor`:
  `PartitionAssignor.on_assignment` (faust/assignor/partition_assignor.py), which kills the
  group coordination when a static member comes back under another address. A static member
  leaves its group by instance id after a clean stop only when told to (scale-down).
"""

from __future__ import annotations

from importlib import metadata

import faust

#: The faust-streaming release these modules were written and drilled against.
FAUST_VERSION = "0.15.3"
#: The aiokafka and mode-streaming releases they were written and drilled against.
AIOKAFKA_VERSION = "0.14.0"
MODE_VERSION = "0.7.1"

#: Every private member of another library that the overrides use, by the object that has it.
#: A use through another object is marked on its line with ruff's SLF001 suppression (its SLF
#: rule flags an unmarked one); uses through `self` in subclasses of Faust's classes
#: (batching.py, recovery.py, membership.py) are listed too. tests/unit/test_private_api.py
#: checks every name against the installed versions and fails in seconds when an upgrade
#: removes one.
FOREIGN_PRIVATE_MEMBERS: dict[str, tuple[str, ...]] = {
    "faust App": ("_new_transport", "_fetcher"),
    "faust Consumer": (
        "_buffered_partitions", "_read_offset", "_thread", "_to_message", "_wait_next_records",
        "_drain_messages", "_committed_offset", "_filter_committable_offsets", "_commit",
    ),
    "faust ConsumerThread": ("_consumer",),
    "faust Producer": (
        "_transaction_producers", "_trn_locks", "_ensure_producer", "_settings_extra",
    ),
    "faust TransactionManager": ("_tps_to_transactional_ids",),
    "faust PartitionAssignor": ("_compress", "_decompress", "_url"),
    "faust RocksDB Store": ("_db_for_partition", "_dbs"),
    "faust TableManager": ("_changelog_queue", "_recovery"),
    "faust Recovery": (
        "_active_events_received_at", "_build_highwaters", "_highwater_logtable",
        "_is_changelog_tp", "_last_active_event_processed_at", "_last_flush_at",
        "_processing_times", "_seek_offsets", "_set_recovery_ended",
        "_standby_events_received_at", "_standbys_span", "_wait",
    ),
    "mode FlowControlQueue": ("_queue", "_putters", "_wakeup_next"),
    "aiokafka AIOKafkaProducer": ("_metadata", "_partitioner", "_txn_manager", "_sender"),
    "aiokafka Sender": ("_find_coordinator", "_retry_backoff"),
    "aiokafka AIOKafkaClient": ("_wait_on_metadata",),
    "aiokafka AIOKafkaConsumer": ("_client", "_fetcher"),
}  # fmt: skip


class UnsupportedFaustVersion(RuntimeError):
    """The installed faust-streaming is not the one the worker was built against."""


def check_faust_version(installed: str = faust.__version__) -> None:
    """Refuse to run on another faust-streaming, aiokafka or mode-streaming: the overrides
    depend on their internals (FOREIGN_PRIVATE_MEMBERS)."""
    found = {
        "faust-streaming": (installed, FAUST_VERSION),
        "aiokafka": (_installed("aiokafka"), AIOKAFKA_VERSION),
        "mode-streaming": (_installed("mode-streaming"), MODE_VERSION),
    }
    for dist, (version, pinned) in found.items():
        if version != pinned:
            raise UnsupportedFaustVersion(
                f"{dist} {version} is installed, but this worker replaces parts of "
                f"{dist} {pinned}'s internals and runs only on that version: "
                f"pip install {dist}=={pinned}"
            )


def _installed(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "(none)"
