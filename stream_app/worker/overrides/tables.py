"""A Faust table as the processors read it, and as the writers store a batch into it.

One RocksDB database per table partition (Faust's RocksDB store) and a changelog topic. Reads
go straight to the partition's database (Faust's `Table.__getitem__` searches every local
partition with three calls per read), a batch's keys in one MultiGet; a batch's changes go in
as one RocksDB `WriteBatch` (Faust writes key by key). The writers (writers.py) send the
changelog records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import TP
from rocksdict import WriteBatch

from stream_app.worker.ports import OutputRecord


class LocalTable:
    """A Faust table (RocksDB store, changelog topic): the processors' `Table` port."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._changelog_topic: str | None = None

    @property
    def store(self) -> Any:
        """Faust's RocksDB store of the table: one database per partition."""
        return self.table.data

    @property
    def changelog_topic(self) -> str:
        """The table's changelog topic name."""
        if self._changelog_topic is None:
            self._changelog_topic = str(self.table.changelog_topic.get_topic_name())
        return self._changelog_topic

    def changelog_tp(self, partition: int) -> TP:
        """The changelog partition of a table partition (the same number)."""
        return TP(self.changelog_topic, partition)

    def get(self, partition: int, key: str) -> bytes | None:
        """One read from the partition's RocksDB database."""
        value: bytes | None = self.store._db_for_partition(partition).get(key.encode())  # noqa: SLF001, private
        return value

    def get_many(self, partition: int, keys: Sequence[str]) -> list[bytes | None]:
        """The keys' values in one RocksDB MultiGet (about a third cheaper per key than gets)."""
        db = self.store._db_for_partition(partition)  # noqa: SLF001, private
        values: list[bytes | None] = db.get([key.encode() for key in keys])
        return values

    def lookup(self, key: str) -> bytes | None:
        """Faust's own lookup, which searches the local partitions (for the HTTP views)."""
        value: bytes | None = self.table.get(key)
        return value

    def store_batch(
        self, partition: int, changes: Sequence[tuple[str, bytes | None]]
    ) -> list[tuple[bytes, bytes | None]]:
        """Write `changes` into the partition's database as one batch (None: delete the key);
        the encoded rows."""
        encoded = [(key.encode(), value) for key, value in changes]
        if encoded:
            rows = WriteBatch(raw_mode=True)
            for key, value in encoded:
                if value is None:
                    rows.delete(key)
                else:
                    rows.put(key, value)
            self.store._db_for_partition(partition).write(rows)  # noqa: SLF001, private
        return encoded

    def count(self, partition: int) -> int:
        """RocksDB's estimate of the keys in the partition's database."""
        db = self.store._db_for_partition(partition)  # noqa: SLF001, private
        return int(db.property_int_value("rocksdb.estimate-num-keys") or 0)

    def scan(
        self, partition: int, start: str, stop: str, limit: int
    ) -> tuple[list[tuple[str, bytes]], str | None]:
        """Up to `limit` rows of the partition's database with `start` <= key < `stop`, in key
        order; and the first key from `start` on that was not returned (None: there is none).

        The iterator stops at the first key it does not return: a range with nothing in it
        costs one seek, however many rows follow it.
        """
        rows: list[tuple[str, bytes]] = []
        iterator = self.store._db_for_partition(partition).iter()  # noqa: SLF001, private
        iterator.seek(start.encode())
        offset_key = self.store.offset_key  # the changelog offset Faust keeps beside the rows
        end = stop.encode()
        while iterator.valid():
            key = iterator.key()
            if key == offset_key:
                iterator.next()
                continue
            if key >= end or len(rows) >= limit:
                return rows, key.decode()
            rows.append((key.decode(), iterator.value()))
            iterator.next()
        return rows, None

    def changelog_records(
        self, partition: int, encoded: Sequence[tuple[bytes, bytes | None]]
    ) -> list[OutputRecord]:
        """The changelog records of stored rows, to the table partition's changelog partition."""
        topic = self.changelog_topic
        return [OutputRecord(topic, key, value, partition, None) for key, value in encoded]
