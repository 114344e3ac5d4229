"""Waiting: `wait_until` polls a condition; `settle` waits until workers have finished a stream."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Hashable

from dev.harness.metrics import WorkerMetrics
from dev.harness.workers import WorkerProcess


class WaitTimeout(AssertionError):
    """A condition did not hold in time (an AssertionError, so a test fails on it)."""


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.25,
    progress: Callable[[], Hashable] | None = None,
    stall: float | None = None,
    check: Callable[[], None] | None = None,
) -> float:
    """Poll `condition` until it holds; return the seconds it took.

    Raises WaitTimeout after `timeout` seconds, or once `progress()` has returned the same value
    for `stall` seconds. `check()` runs on every poll and may raise (e.g. a worker died).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    last = progress() if progress is not None else None
    moved = started
    while True:
        if check is not None:
            check()
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        now = loop.time()
        if outcome:
            return now - started
        if now - started > timeout:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        if progress is not None:
            current = progress()
            if current != last:
                last, moved = current, now
            elif stall is not None and now - moved > stall:
                raise WaitTimeout(f"no progress for {stall:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def scrape(*workers: WorkerProcess) -> WorkerMetrics:
    """GET /metrics of every worker, added up (a worker that does not answer counts nothing)."""
    found = await asyncio.gather(*(asyncio.to_thread(worker.metrics) for worker in workers))
    return WorkerMetrics.combined(m for m in found if m is not None)


async def settle(
    *workers: WorkerProcess,
    records: int,
    timeout: float = 120.0,
    quiet: float = 1.0,
    report: Callable[[WorkerMetrics], None] | None = None,
    report_every: float = 5.0,
) -> WorkerMetrics:
    """Wait until the workers have handled `records` input records and nothing moves any more.

    Done when every record has an outcome (applied, duplicate or rejected), every claim sent
    has come back as a verdict, and the counters stood still for `quiet` seconds. Raises
    RuntimeError when a worker exits, WaitTimeout after `timeout` seconds. `report` is called
    with the figures every `report_every` seconds while waiting.
    """
    state: dict[str, object] = {}
    clock = time.monotonic
    next_report = clock() + report_every

    async def done() -> bool:
        nonlocal next_report
        metrics = await scrape(*workers)
        now = clock()
        if metrics.progress() != state.get("progress"):
            state["progress"], state["since"] = metrics.progress(), now
        state["metrics"] = metrics
        if report is not None and now >= next_report:
            report(metrics)
            next_report = now + report_every
        since = state["since"]
        assert isinstance(since, float)
        return metrics.finished(records) and now - since >= quiet

    def alive() -> None:
        for worker in workers:
            worker.check_alive()

    try:
        await wait_until(done, timeout=timeout, what=f"{records} records handled", check=alive)
    except WaitTimeout:
        metrics = state.get("metrics")
        if isinstance(metrics, WorkerMetrics):
            raise WaitTimeout(
                f"after {timeout:.0f}s the workers had handled {metrics.handled} of {records} "
                f"records and read {metrics.verdicts} verdicts for {metrics.claims} claims"
            ) from None
        raise
    metrics = state["metrics"]
    assert isinstance(metrics, WorkerMetrics)
    return metrics
