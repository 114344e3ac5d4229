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
  writes. One read per key, one RocksDB write batch per input batch.
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
  commit the checkpoint's.
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

import faust

#: The faust-streaming release these modules were written and drilled against.
FAUST_VERSION = "0.15.3"


class UnsupportedFaustVersion(RuntimeError):
    """The installed faust-streaming is not the one the worker was built against."""


def check_faust_version(installed: str = faust.__version__) -> None:
    """Refuse to run on another faust-streaming: the overrides depend on its internals."""
    if installed != FAUST_VERSION:
        raise UnsupportedFaustVersion(
            f"faust-streaming {installed} is installed, but this worker replaces parts of "
            f"faust-streaming {FAUST_VERSION}'s internals and runs only on that version: "
            f"pip install faust-streaming=={FAUST_VERSION}"
        )
