"""What the agents' bodies use of Faust: a table of bytes, a producer, a consumed message.

Small structural types, so that `SessionProcessor` and `ProfileProcessor` can be read without
Faust and tested with in-memory fakes. In the worker, Faust's own objects fill them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar


class Store(Protocol):
    """The storage under a table (RocksDB in the worker): one read, without the table's checks."""

    def get(self, key: str) -> bytes | None:
        """The stored value of `key`, if any."""


class Table(Protocol):
    """A Faust table whose values are bytes; writes also go to its changelog."""

    @property
    def data(self) -> Store:
        """The storage itself."""

    def get(self, key: str) -> bytes | None:
        """The stored value of `key`, if any."""

    def __setitem__(self, key: str, value: bytes) -> None:
        """Store a value (and queue its changelog record)."""


Headers = Sequence[tuple[str, bytes]]
V = TypeVar("V")


class Producer(Protocol):
    """Faust's producer (under exactly_once, its transaction manager): queues one record."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> Any:
        """Queue a record; returns a future of its delivery."""


class Producers(Protocol):
    """Where the producer comes from: the Faust app."""

    async def maybe_start_producer(self) -> Producer:
        """The app's producer, started on first use."""


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
    """A table as one batch of records sees it: each key read once, each changed key written once.

    Records of a batch are applied in order against these values; `write` then stores every
    changed key once, so a table (and its changelog) gets one write per key per batch.
    """

    def __init__(
        self, table: Table, decode: Callable[[bytes], V], encode: Callable[[V], bytes]
    ) -> None:
        self._table = table
        self._decode = decode
        self._encode = encode
        self._values: dict[str, V | None] = {}
        self._changed: dict[str, None] = {}  # insertion-ordered set

    def get(self, key: str) -> V | None:
        """The key's value: the batch's latest, else the table's."""
        try:
            return self._values[key]
        except KeyError:
            stored = self._table.data.get(key)
            value = None if stored is None else self._decode(stored)
            self._values[key] = value
            return value

    def put(self, key: str, value: V) -> None:
        """Set the key's value for the rest of the batch; stored by `write`."""
        self._values[key] = value
        self._changed[key] = None

    def write(self) -> None:
        """Store each changed key once (in the order first changed)."""
        for key in self._changed:
            value = self._values[key]
            assert value is not None
            self._table[key] = self._encode(value)
        self._changed.clear()
