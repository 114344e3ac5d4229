"""What the running app tells the metrics and the log: commits, rebalances, lag, restore."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import faust
from faust.sensors import Sensor

from stream_app import __version__
from stream_app.settings import Settings
from stream_app.worker.metrics import Metrics

log = logging.getLogger("stream_app.worker")


class MetricsSensor(Sensor):
    """Faust sensor counting rebalances, with one log line per rebalance.

    (Commits are timed by the checkpoint: the worker's commit replaces Faust's, which is what
    calls a sensor's on_commit_* hooks.)
    """

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        """Count the rebalance; the restore that follows starts a new backlog."""
        self.metrics.rebalances += 1
        self.metrics.swept.clear()  # partitions may have moved: recounted by the next sweeps
        self.metrics.restore_to_do = 0
        return {"started": time.monotonic()}

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        """One line per rebalance: how long it took and what this worker holds now."""
        seconds = time.monotonic() - state.get("started", time.monotonic())
        assigned = app.consumer.assignment() if app.consumer is not None else set()
        streams = sorted(
            f"{tp.topic}:{tp.partition}" for tp in assigned if not tp.topic.endswith("-changelog")
        )
        log.info(
            "rebalance %d done in %.1f s: %d partitions assigned (%s)",
            self.metrics.rebalances,
            seconds,
            len(streams),
            ", ".join(streams) or "none",
        )


def consumer_lag(app: faust.App) -> Mapping[tuple[str, int], int]:
    """Per assigned input partition: its high watermark minus the group's committed offset."""
    consumer: Any = app.consumer
    committed = getattr(consumer, "_committed_offset", {})
    found: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        # Changelogs are restored, not consumed; Faust's assignor topic holds no work.
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        try:
            highwater: int | None = consumer.highwater(tp)
        except Exception:  # not fetched yet: no lag to report
            continue
        if highwater is None:
            continue
        # Faust keeps the offset of the last record committed; the next to read is one more.
        done = committed.get(tp)
        found[(tp.topic, tp.partition)] = max(highwater - (0 if done is None else done + 1), 0)
    return found


def restore_remaining(app: faust.App) -> int:
    """Changelog records the active tables' recovery still has to apply."""
    recovery = getattr(app.tables, "recovery", None)
    if recovery is None or recovery.completed.is_set():
        return 0
    return int(recovery.active_remaining_total())


def observe(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Wire the metrics to the app: build info, lag and restore sources, and the sensor."""
    metrics.info.update(
        version=__version__,
        guarantee=settings.processing_guarantee.value,
        faust_version=faust.__version__,
    )
    metrics.lag_source = lambda: consumer_lag(app)
    metrics.restore_source = lambda: restore_remaining(app)
    app.sensors.add(MetricsSensor(metrics))
