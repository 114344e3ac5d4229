"""Under at_least_once, a table's changelog record leaves only after the outputs before it.

A batch's outputs and its table's changelog records go to different partitions; nothing
orders their acknowledgements. A worker killed after the changelog record was written but
before an output was leaves a changelog saying "applied" for an event whose
snapshot, transition or claim never reached Kafka. Its successor restores that state, consumes
the event again (its offset was not committed), finds its eventId already applied, skips it,
and the output is lost for good (a pending claim even holds the session's snapshots forever).

So under at_least_once every changelog record waits, in order, until every output sent before
it has been acknowledged. A crash then leaves either both, or the outputs without the state
change: the event is applied again and its outputs repeated, which at_least_once allows. The
commit waits until the queue is empty (see `ChangelogFence.drain`), so a committed offset
always implies the changelog records of its events. Under exactly_once the transaction makes
outputs and changelog atomic already, and the fence is not used (writers.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

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

    def track(self, acknowledgements: Iterable[Awaitable[Any]]) -> None:
        """Remember outputs' acknowledgements: later changelog records wait for them."""
        self._outputs.extend(acknowledgements)

    def send_after_outputs(self, send: Callable[[], Any]) -> None:
        """Call `send` once every output tracked so far is acknowledged (FIFO with others).

        `send` may return an awaitable (a producer's send): it is awaited before the next.
        """
        if not self._outputs and not self._queue and not inspect.iscoroutinefunction(send):
            send()
            return
        self._queue.append((self._outputs, send))
        self._outputs = []
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait until every queued changelog record has been handed to the producer.

        Raises when an output before one of them, or a changelog send itself, failed: the
        changelog records from there on were not sent, so nothing may be committed.
        """
        await asyncio.wait_for(self._idle.wait(), timeout)
        if self.failed is not None:
            failed = "changelog records held back: an output or a changelog send failed"
            raise RuntimeError(failed) from self.failed
        self._outputs = [ack for ack in self._outputs if not _done_ok(ack)]

    async def _run(self) -> None:
        while self._queue:
            outputs, send = self._queue[0]
            try:
                for acknowledgement in outputs:
                    await acknowledgement
                self._queue.popleft()
                sent = send()
                if inspect.isawaitable(sent):
                    await sent
            except BaseException as exc:
                # An output's fate is unknown, or its changelog records did not reach the
                # producer: the state change must not be recorded after it, and the commit that
                # follows fails, so the events are consumed again.
                log.error("changelog records held back (output or send failed): %r", exc)
                self.failed = exc
                self._queue.clear()
                break
        self._idle.set()


def _done_ok(acknowledgement: Awaitable[Any]) -> bool:
    return (
        isinstance(acknowledgement, asyncio.Future)
        and acknowledgement.done()
        and not acknowledgement.cancelled()
        and acknowledgement.exception() is None
    )
