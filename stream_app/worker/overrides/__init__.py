"""Everything that replaces a part of faust-streaming's own machinery, in one package.

Faust stays the framework (app, agents, tables, group membership, rebalances, web, CLI); these
modules replace the parts of it that exactly-once outputs, crash recovery and speed could not
live with. Each was written and drilled against faust-streaming 0.15.3, which is pinned, and
the worker refuses to start on another version (`check_faust_version`). The full account, with
what the drills found: docs/design.md, "Where the worker replaces Faust's machinery".

What each module replaces (faust-streaming 0.15.3), and why:

- batching.py `BatchingConsumer`: `Consumer.getmany`, `pause_partitions` and
  `resume_partitions` (faust/transport/consumer.py). One Faust event per fetched partition
  batch (Faust's per-record path cost ten times the processing), with no offset gaps between
  batches; a paused partition is paused in aiokafka too, so it is not fetched and left there.
- sends.py `send_records`: `Producer.send` (faust/transport/drivers/aiokafka.py) and
  aiokafka's per-record `send`. A batch's records leave as one record batch per partition.
- tables.py `TableWriter`: `Table.__setitem__`/`on_key_set`, `Collection.send_changelog` and
  `_on_changelog_sent` (faust/tables/base.py), the `ProducerBuffer` (faust/transport/
  producer.py). One RocksDB write batch and one changelog batch per input batch; the changelog
  offset persisted once per batch.
- changelog.py `ChangelogFence`: new (Faust sends changelog records and outputs unordered).
  Under at_least_once a changelog record must not reach Kafka before its event's outputs.
- transactions.py `SourcePartitionTransactionManager`: `TransactionManager.send`, `.commit` and
  `.on_rebalance`, and `Consumer.commit` (faust/transport/consumer.py). Outputs join the source
  partition's transaction; commits carry only handled events; fenced producers are replaced.
- transactions.py `Checkpoint`: new. A commit never falls in the middle of a batch.
- transactions.py `drain_producer_buffer`: `ProducerBuffer.flush` (faust/transport/
  producer.py), which gives up after 0.1 s; a commit waits for everything queued.
- recovery.py `ExactRecovery`, `StreamTableManager`: `Recovery` (faust/tables/recovery.py) and
  `TableManager.on_commit` (faust/tables/manager.py). Exact end offsets, no early give-up, no
  dropped records, no holes after rebalances, offsets persisted under exactly_once.
- local_state.py: new. RocksDB can hold writes of aborted transactions after a crash, so the
  tables are rebuilt from the changelog; one live worker per data directory.
- membership.py: new (aiokafka knows LeaveGroup v0-v1 only). A static member leaves its group
  by instance id after a clean stop.
"""

from __future__ import annotations

from typing import Any, TypeVar

import faust

T = TypeVar("T")

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


def one_per_app(app: Any, kind: type[T]) -> T:
    """The app's single instance of `kind`, created on first use (kept on the app itself)."""
    attribute = f"_stream_app_{kind.__name__}"
    instance: T | None = getattr(app, attribute, None)
    if instance is None:
        instance = kind()
        setattr(app, attribute, instance)
    return instance
