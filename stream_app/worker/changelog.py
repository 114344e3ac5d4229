"""Under at_least_once, a table's changelog record leaves only after the outputs before it.

A table write queues its changelog record at once, and the outputs of the same event are sent
beside it; nothing orders their acknowledgements. A worker killed after the changelog record
was written but before an output was leaves a changelog saying "applied" for an event whose
snapshot, transition or claim never reached Kafka. Its successor restores that state, consumes
the event again (its offset was not committed), finds its eventId already applied, skips it,
and the output is lost for good (a pending claim even holds the session's snapshots forever).

So under at_least_once every changelog record waits, in order, until every output sent before
it has been acknowledged. A crash then leaves either both, or the outputs without the state
change: the event is applied again and its outputs repeated, which at_least_once allows. The
commit waits until the queue is empty (see `ChangelogFence.drain`), so a committed offset
always implies the changelog records of its events. Under exactly_once the transaction makes
outputs and changelog atomic already, and records go straight to Faust.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from stream_app.worker.ports import Headers, Producer

log = logging.getLogger(__name__)

#: How long a commit waits for the changelog queue to empty before failing.
DRAIN_TIMEOUT = 120.0


class ChangelogFence:
    """Outputs awaiting acknowledgement, and the changelog records queued behind them."""

    def __init__(self) -> None:
        #: Acknowledgements of outputs sent since the last changelog record was queued.
        self._outputs: list[Awaitable[Any]] = []
        #: Changelog sends, each behind the outputs that preceded it.
        self._queue: deque[tuple[list[Awaitable[Any]], Callable[[], Any]]] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    @classmethod
    def of(cls, app: Any) -> ChangelogFence:
        """The app's fence (one per app, created on first use)."""
        fence: ChangelogFence | None = getattr(app, "_stream_app_changelog_fence", None)
        if fence is None:
            fence = cls()
            app._stream_app_changelog_fence = fence
        return fence

    def track(self, acknowledgement: Awaitable[Any]) -> None:
        """Remember an output's acknowledgement: later changelog records wait for it."""
        self._outputs.append(acknowledgement)

    def send_after_outputs(self, send: Callable[[], Any]) -> None:
        """Call `send` once every output tracked so far is acknowledged (FIFO with others)."""
        if not self._outputs and not self._queue:
            send()
            return
        self._queue.append((self._outputs, send))
        self._outputs = []
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait until every queued changelog record has been handed to the producer.

        Raises when an output before one of them failed: its changelog record was not sent,
        so nothing may be committed.
        """
        await asyncio.wait_for(self._idle.wait(), timeout)
        if self.failed is not None:
            raise RuntimeError("an output was not acknowledged") from self.failed
        self._outputs = [ack for ack in self._outputs if not _done_ok(ack)]

    async def _run(self) -> None:
        while self._queue:
            outputs, send = self._queue[0]
            try:
                for acknowledgement in outputs:
                    await acknowledgement
            except BaseException as exc:
                # The output's fate is unknown: its state change must not be recorded, and
                # the commit that follows fails, so the event is consumed again.
                log.error("output not acknowledged; holding back changelog records: %r", exc)
                self.failed = exc
                self._queue.clear()
                break
            self._queue.popleft()
            send()
        self._idle.set()


def _done_ok(acknowledgement: Awaitable[Any]) -> bool:
    return (
        isinstance(acknowledgement, asyncio.Future)
        and acknowledgement.done()
        and not acknowledgement.cancelled()
        and acknowledgement.exception() is None
    )


class FencedTable(faust.Table[Any, Any]):
    """A Faust table whose changelog records follow the outputs under at_least_once."""

    def on_key_set(self, key: Any, value: Any) -> None:
        """Queue the changelog record behind the outputs sent before it (at_least_once)."""
        if self.app.in_transaction:
            super().on_key_set(key, value)
            return
        # Faust's Table.on_key_set minus the key TTL, which these tables do not use.
        partition = self.partition_for_key(key)
        ChangelogFence.of(self.app).send_after_outputs(
            lambda: self.send_changelog(partition, key, value)
        )
        self._sensor_on_set(self, key, value)


class FencedProducers:
    """The app's producer, with every send tracked by the fence under at_least_once.

    What the processors get as their `Producers`: a record they send is then one that the
    changelog records queued after it wait for.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.fence = ChangelogFence.of(app)
        self._tracked: _TrackedProducer | None = None

    async def maybe_start_producer(self) -> Producer:
        """The app's producer (wrapped under at_least_once, once per producer)."""
        producer: Producer = await self.app.maybe_start_producer()
        if self.app.in_transaction:
            return producer
        if self._tracked is None or self._tracked.producer is not producer:
            self._tracked = _TrackedProducer(producer, self.fence)
        return self._tracked


class _TrackedProducer:
    def __init__(self, producer: Producer, fence: ChangelogFence) -> None:
        self.producer = producer
        self.fence = fence

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> Any:
        acknowledgement = await self.producer.send(topic, key, value, partition, timestamp, headers)
        self.fence.track(acknowledgement)
        return acknowledgement
