"""What the agents' bodies use of Faust: a table of bytes, a producer, a consumed message.

Small structural types, so that `SessionProcessor` and `ProfileProcessor` can be read without
Faust and tested with in-memory fakes. In the worker, Faust's own objects fill them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


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
