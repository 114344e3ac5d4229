"""What the agents' bodies use of Faust: a consumed message, a table, an outbox, a writer.

Small types, so that `SessionProcessor` and `ProfileProcessor` can be read without Faust and
tested with in-memory fakes. In the worker, Faust's messages, `overrides.tables.LocalTable` and
the guarantee's writer (`overrides.writers`) fill them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

Headers = Sequence[tuple[str, bytes]]
V = TypeVar("V")


class OutputRecord(NamedTuple):
    """One record a batch sends: to `partition`, or where the key hashes when it is None.

    A None value is a tombstone (a compacted topic forgets the key).
    """

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: Headers | None


class Outbox:
    """The records one batch of input sends, collected in order and sent together."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: list[OutputRecord] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Add a record; it leaves with the batch's others (BatchWriter.write)."""
        self.records.append(OutputRecord(topic, key, value, partition, headers))


class Table(Protocol):
    """A table of bytes, read by whole batches of one partition.

    In the worker: RocksDB, one database per partition, and a changelog topic
    (stream_app/worker/overrides/tables.py).
    """

    def get(self, partition: int, key: str) -> bytes | None:
        """The stored value of `key` in `partition`, if any."""

    def get_many(self, partition: int, keys: Sequence[str]) -> list[bytes | None]:
        """The stored values of `keys` in `partition`, in one read (None: none)."""

    def lookup(self, key: str) -> bytes | None:
        """The stored value of `key` in whichever local partition holds it."""

    def count(self, partition: int) -> int:
        """About how many keys `partition` holds (RocksDB's estimate)."""

    def scan(
        self, partition: int, start: str, stop: str, limit: int
    ) -> tuple[list[tuple[str, bytes]], str | None]:
        """Up to `limit` stored (key, value) of `partition` with `start` <= key < `stop`, in
        key order; and the first key from `start` on that was not returned (None: none)."""


class BatchWriter(Protocol):
    """The unit of work of one handled batch: its records and its table's changes, written.

    In the worker, the guarantee's writer bound to the processor's table
    (stream_app/worker/overrides/writers.py).
    """

    async def write(
        self, source: Message, outbox: Outbox, changes: Sequence[tuple[str, bytes | None]]
    ) -> None:
        """Send the batch's records, then store `changes` locally and in the changelog.

        A change whose value is None deletes its key, and is a tombstone on the changelog.

        `source` is the batch's last consumed record: its partition is the table partition,
        and under exactly_once its transaction takes everything. Under at_least_once the
        changelog records leave only after the batch's records are acknowledged.
        """


class Message(Protocol):
    """A consumed record, as the agents see it."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Headers | None: ...

    @property
    def timestamp(self) -> float: ...


class BatchState(Generic[V]):
    """A table partition as one batch of records sees it: each key read once, written once.

    Records of a batch are applied in order against these values; `changes` then gives every
    changed key once, so a table (and its changelog) gets one write per key per batch.
    """

    def __init__(
        self,
        table: Table,
        partition: int,
        decode: Callable[[bytes], V],
        encode: Callable[[V], bytes],
    ) -> None:
        self._table = table
        self._partition = partition
        self._decode = decode
        self._encode = encode
        self._values: dict[str, V | None] = {}
        # Stored bytes read ahead (prefetch), decoded when first got.
        self._prefetched: dict[str, bytes | None] = {}
        # Each key's value as the table held it before the batch.
        self._originals: dict[str, V | None] = {}
        # Insertion-ordered: each changed key, with its value's bytes when the caller had them
        # (None: to be encoded), or _DELETED.
        self._changed: dict[str, bytes | object | None] = {}

    def prefetch(self, keys: Iterable[str]) -> None:
        """Read the stored values of `keys` the batch will likely get, in one table read.

        They are decoded when first got (so a value that does not decode fails that get, as
        an unprefetched one would); a key never got costs only its read.
        """
        wanted = [
            key for key in dict.fromkeys(keys) if key not in self._values
            and key not in self._prefetched
        ]  # fmt: skip
        if wanted:
            values = self._table.get_many(self._partition, wanted)
            self._prefetched.update(zip(wanted, values, strict=True))

    def get(self, key: str) -> V | None:
        """The key's value: the batch's latest, else the table's."""
        value = self._values.get(key, _UNREAD)
        if value is not _UNREAD:
            return value  # type: ignore[return-value]
        stored = self._prefetched.pop(key, _UNREAD)
        if stored is _UNREAD:
            stored = self._table.get(self._partition, key)
        value = None if stored is None else self._decode(stored)  # type: ignore[arg-type]
        self._values[key] = self._originals[key] = value
        return value

    def put(self, key: str, value: V, encoded: bytes | None = None) -> None:
        """Set the key's value for the rest of the batch; returned by `changes`.

        `encoded`, when given, is `value` already encoded (it is not encoded again).
        """
        self._values[key] = value
        self._changed[key] = encoded

    def delete(self, key: str) -> None:
        """Remove the key for the rest of the batch; `changes` gives it with None."""
        self._values[key] = None
        self._changed[key] = _DELETED

    def changed(self) -> list[tuple[str, V | None, V | None]]:
        """Each changed key once, with its value before the batch and now (None: none)."""
        return [(key, self._originals.get(key), self._values[key]) for key in self._changed]

    def touched(self, key: str) -> bool:
        """Whether the batch has read or written the key (its value here is the latest)."""
        return key in self._values

    def changes(self) -> list[tuple[str, bytes | None]]:
        """Each changed key once (in the order first changed), with its encoded value (None:
        deleted)."""
        changes: list[tuple[str, bytes | None]] = []
        for key, encoded in self._changed.items():
            if encoded is _DELETED:
                changes.append((key, None))
            elif isinstance(encoded, bytes):
                changes.append((key, encoded))
            else:
                changes.append((key, self._encode(self._values[key])))  # type: ignore[arg-type]
        return changes


#: BatchState's mark of a deleted key.
_DELETED = object()
#: BatchState's mark of a key not read yet.
_UNREAD = object()
