"""Under at_least_once a changelog record leaves only after the outputs sent before it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from stream_app.worker.overrides.changelog import ChangelogFence
from stream_app.worker.overrides.recovery import purge_queued


def test_without_outputs_pending_a_changelog_record_leaves_at_once() -> None:
    async def scenario() -> list[str]:
        sent: list[str] = []
        ChangelogFence().send_after_outputs(lambda: sent.append("s1"))
        return sent

    assert asyncio.run(scenario()) == ["s1"]


def test_changelog_records_wait_for_earlier_outputs_and_keep_their_order() -> None:
    async def scenario() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        fence = ChangelogFence()
        sent: list[str] = []
        seen: list[list[str]] = []
        first, second = loop.create_future(), loop.create_future()
        fence.track([first])
        fence.send_after_outputs(lambda: sent.append("s1 v1"))
        fence.track([second])
        fence.send_after_outputs(lambda: sent.append("s1 v2"))
        fence.send_after_outputs(lambda: sent.append("s2 v1"))  # no output of its own
        await asyncio.sleep(0.01)
        seen.append(list(sent))
        second.set_result(None)  # the later output is acknowledged first
        await asyncio.sleep(0.01)
        seen.append(list(sent))
        first.set_result(None)
        await fence.drain(timeout=1.0)
        seen.append(list(sent))
        return seen

    assert asyncio.run(scenario()) == [[], [], ["s1 v1", "s1 v2", "s2 v1"]]


def test_a_failed_output_holds_its_changelog_record_back_and_fails_the_commit() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        fence = ChangelogFence()
        sent: list[str] = []
        failed = loop.create_future()
        fence.track([failed])
        fence.send_after_outputs(lambda: sent.append("s1"))
        failed.set_exception(OSError("broker gone"))
        with pytest.raises(RuntimeError, match="held back"):
            await fence.drain(timeout=1.0)
        return sent

    assert asyncio.run(scenario()) == []


def test_a_changelog_send_that_fails_holds_the_later_ones_back_and_fails_the_commit() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        fence = ChangelogFence()
        sent: list[str] = []
        acknowledged = loop.create_future()
        acknowledged.set_result(None)

        async def broken_send() -> None:
            raise OSError("producer closed")

        async def later_send() -> None:
            sent.append("s2")

        fence.track([acknowledged])
        fence.send_after_outputs(broken_send)
        fence.send_after_outputs(later_send)
        with pytest.raises(RuntimeError, match="held back"):
            await fence.drain(timeout=1.0)
        return sent

    assert asyncio.run(scenario()) == []


def _event(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(tp=TP(topic, partition), offset=offset))


def test_a_rebalance_drops_every_queued_record_and_unblocks_the_fetcher() -> None:
    async def scenario() -> tuple[int, bool, list[tuple[int, int]]]:
        queue: asyncio.Queue[SimpleNamespace] = asyncio.Queue(maxsize=4)
        for partition, offset in [(0, 751), (1, 10), (0, 752), (1, 11)]:
            queue.put_nowait(_event("sessions-changelog", partition, offset))
        # A record fetched after the queue filled up waits for room.
        blocked = asyncio.ensure_future(queue.put(_event("sessions-changelog", 0, 753)))
        await asyncio.sleep(0)
        dropped = purge_queued(queue)
        await asyncio.wait_for(blocked, 1.0)
        left = [(e.message.tp.partition, e.message.offset) for e in [queue.get_nowait()]]
        return dropped, queue.empty(), left

    assert asyncio.run(scenario()) == (4, True, [(0, 753)])
