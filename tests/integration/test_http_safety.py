"""The web port is safe to expose: probes, a bearer token on sessions, no Faust internals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dev.harness.kafka import read_all
from dev.harness.settle import wait_until
from dev.harness.workers import WorkerProcess, settings_for
from stream_app.kafka_security import Secret
from tests.integration.helpers import event, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TOKEN = "s3cret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_liveness_answers_before_readiness_and_readiness_reports_restore(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(partitions=4, wait=False)
    live_while_not_ready: list[dict[str, object]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        worker.check_alive()
        try:
            live, _ = worker.get("/livez", timeout=2)
            ready, body = worker.get("/readyz", timeout=2)
        except OSError:
            time.sleep(0.05)
            continue
        if ready == 200:
            break
        if live == 200 and ready == 503:
            live_while_not_ready.append(json.loads(body))
        time.sleep(0.05)

    assert worker.get("/readyz")[0] == 200
    assert json.loads(worker.get("/readyz")[1]) == {"status": "ok"}
    assert worker.get("/health") == worker.get("/readyz")
    assert worker.get("/livez") == (200, b'{"status":"alive"}')
    # While it joined the group and restored, it was alive but not ready.
    assert live_while_not_ready, "never saw /livez 200 while /readyz was 503"
    starting = live_while_not_ready[-1]
    assert starting["status"] == "starting"
    assert set(starting["restoreRemaining"]) == {"active", "standby"}  # type: ignore[arg-type]


async def test_faust_views_are_not_served_and_partitions_are(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(partitions=2)

    for path in ("/table/", "/table/sessions/", "/router/", "/graph/", "/stats/"):
        assert worker.get(path)[0] == 404, path
    status, body = worker.get("/partitions")
    assert status == 200
    active = json.loads(body)["active"]
    assert active[worker.settings.input_topic] == [0, 1]
    # The failover drill finds a worker's table partitions here.
    assert active[f"{worker.settings.app_id}-sessions-changelog"] == [0, 1]


async def test_sessions_need_the_token_on_every_worker_and_are_never_cached(
    start_worker: Callable[..., WorkerProcess],
    bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    base = settings_for(bootstrap, unique_name("tok"), tmp_path / "unused", partitions=4)
    settings = replace(base, http_token=Secret(TOKEN))
    a = start_worker(settings)
    b = start_worker(settings)
    await wait_until(
        lambda: a.health() == 200 and b.health() == 200 and _owns_some(a) and _owns_some(b),
        timeout=120,
        what="both workers ready with partitions of their own",
    )
    keys = [f"tok-{i}" for i in range(16)]
    await send(bootstrap, settings.input_topic, [(k, event(f"e-{k}", k)) for k in keys])
    await wait_until(
        lambda: all(a.get(f"/sessions/{k}", headers=BEARER)[0] == 200 for k in keys),
        timeout=90,
        what="every session answered through worker a",
    )
    # Some of those keys live on b: the answer was forwarded with the token.
    # The table shows a session before its transaction commits (exactly_once): wait until a
    # read_committed reader sees every snapshot, then look at where they are.
    records: list[Any] = []

    async def all_snapshots_committed() -> bool:
        nonlocal records
        records = await read_all(bootstrap, settings.output_topic)
        return len(records) >= len(keys)

    await wait_until(all_snapshots_committed, timeout=60, what="every snapshot committed")
    partitions_of_b = set(_active(b)[settings.input_topic])
    assert {r.partition for r in records} & partitions_of_b

    for worker in (a, b):
        for key in keys:
            status, body, headers = worker.request(f"/sessions/{key}", headers=BEARER)
            assert status == 200
            assert json.loads(body)["integrationId"] == key
            assert headers["Cache-Control"] == "no-store"
        status, body, headers = worker.request(f"/sessions/{keys[0]}")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert headers["Cache-Control"] == "no-store"
        assert TOKEN.encode() not in body
        wrong = {"Authorization": "Bearer not-the-token"}
        assert worker.get(f"/sessions/{keys[0]}", headers=wrong)[0] == 401
        status, _, headers = worker.request("/sessions/nobody", headers=BEARER)
        assert (status, headers["Cache-Control"]) == (404, "no-store")
        # Probes and metrics stay open.
        for path in ("/livez", "/readyz", "/health", "/metrics"):
            assert worker.get(path)[0] == 200, path


def _active(worker: WorkerProcess) -> dict[str, list[int]]:
    status, body = worker.get("/partitions")
    return json.loads(body)["active"] if status == 200 else {}


def _owns_some(worker: WorkerProcess) -> bool:
    return bool(_active(worker).get(worker.settings.input_topic))
