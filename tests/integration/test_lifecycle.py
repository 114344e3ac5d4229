"""The documented lifecycle example, end to end through Kafka and a real worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dev.harness.workers import WorkerProcess
from tests.integration.helpers import lifecycle_lines, read_json, read_until, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

KEY = "URNGV8294NV"

#: What each snapshot of the example must say (from the documented walk-through).
EXPECTED_SNAPSHOTS: dict[int, dict[str, Any]] = {
    1: {"state": "open", "updated": "2026-11-25T10:00:00Z", "total": 124.99,
        "profileId": "", "coupon": "", "firstSession": True},
    2: {"state": "open", "updated": "2026-11-25T10:00:00Z", "total": 124.99,
        "profileId": "customer-7", "coupon": "XMAS-2021", "firstSession": True,
        "attributes": {"channel": "web"}},
    3: {"state": "closed", "updated": "2026-11-25T10:05:00Z", "total": 124.99,
        "discounts": {"10% off shoes": 10.0}, "firstSession": True},
    4: {"state": "partially_returned", "updated": "2026-11-26T09:00:00Z", "total": 74.99,
        "firstSession": True},
    5: {"state": "cancelled", "updated": "2026-11-27T09:00:00Z", "total": 74.99,
        "firstSession": True, "coupon": "XMAS-2021"},
}  # fmt: skip

EXPECTED_TRANSITIONS = [
    (None, "open", "e1", "2026-11-25T10:00:00Z", 124.99, ""),
    ("open", "closed", "e3", "2026-11-25T10:05:00Z", 124.99, "customer-7"),
    ("closed", "partially_returned", "e5", "2026-11-26T09:00:00Z", 74.99, "customer-7"),
    ("partially_returned", "cancelled", "e6", "2026-11-27T09:00:00Z", 74.99, "customer-7"),
]


async def test_lifecycle_example_through_kafka(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=4)
    settings = worker.settings
    lines = lifecycle_lines()
    await send(bootstrap, settings.input_topic, [(KEY, line) for line in lines])

    snapshots = await read_until(
        bootstrap, settings.output_topic, lambda rs: any(v["updateCount"] == 5 for _, v in rs)
    )
    transitions = await read_until(bootstrap, settings.transitions_topic, lambda rs: len(rs) >= 4)
    dead = await read_until(bootstrap, settings.dlq_topic, lambda rs: len(rs) >= 1)

    # Snapshots: one per applied event, except those held back while customer-7's
    # firstSession verdict was pending; never one for the duplicate or the rejected event.
    counts = [v["updateCount"] for _, v in snapshots]
    assert counts == sorted(set(counts)), counts
    assert counts[0] == 1
    assert counts[-1] == 5
    for key, snapshot in snapshots:
        assert key == KEY
        expected = EXPECTED_SNAPSHOTS[snapshot["updateCount"]]
        assert {name: snapshot[name] for name in expected} == expected
        assert snapshot["created"] == "2026-11-25T10:00:00Z"
        assert snapshot["integrationId"] == KEY
        assert snapshot["applicationId"] == 322
        assert snapshot["identifiers"] == ["91.11.156.141"]
    final = snapshots[-1][1]
    assert final["cartItems"] == [
        {"sku": "SKU-1", "name": "Shoe", "quantity": 2, "price": 50.0,
         "position": 0, "returnedQuantity": 1, "remainingQuantity": 1},
        {"sku": "SKU-2", "quantity": 1, "price": 19.99,
         "additionalCosts": {"shipping": {"price": 5.0}},
         "position": 1, "returnedQuantity": 0, "remainingQuantity": 1},
    ]  # fmt: skip
    assert set(final) == {
        "integrationId", "applicationId", "created", "updated", "profileId", "coupon",
        "referral", "state", "cartItems", "identifiers", "attributes", "discounts", "total",
        "firstSession", "updateCount",
    }  # fmt: skip

    assert [
        (t["from"], t["to"], t["eventId"], t["at"], t["total"], t["profileId"])
        for _, t in transitions
    ] == EXPECTED_TRANSITIONS
    assert all(key == KEY and t["applicationId"] == 322 for key, t in transitions)

    # e4 tried to change a closed session: exactly one dead-letter record, with the bytes.
    assert len(dead) == 1
    key, rejection = dead[0]
    assert key == KEY
    assert rejection["error"]["code"] == "session_locked"
    assert "$.session.coupon" in rejection["error"]["message"]
    assert rejection["event"] == lines[4].decode()
    assert json.loads(rejection["event"])["eventId"] == "e4"
    assert rejection["eventEncoding"] == "utf-8"
    assert rejection["source"]["topic"] == settings.input_topic
    assert rejection["source"]["offset"] == 4
    assert rejection["source"]["key"] == KEY
    rejected_at = datetime.fromisoformat(rejection["rejectedAt"])
    assert rejection["rejectedAt"].endswith("Z")
    assert abs(datetime.now(UTC) - rejected_at) < timedelta(minutes=5)

    # GET /sessions answers with the latest emitted snapshot.
    status, body = worker.get(f"/sessions/{KEY}")
    assert status == 200
    assert json.loads(body) == final

    # Nothing more arrives later (the duplicate e2 stays skipped).
    assert len(await read_json(bootstrap, settings.transitions_topic)) == 4
