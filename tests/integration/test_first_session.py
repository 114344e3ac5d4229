"""firstSession across partitions: one first session per profile, never contradicted."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

import pytest

from dev.harness.kafka import read_all
from dev.harness.workers import WorkerProcess
from tests.integration.helpers import event, read_until, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PROFILES = [f"profile-{n}" for n in range(6)]
SESSIONS_PER_PROFILE = 6
CART = [{"sku": "A", "quantity": 1, "price": 5.0}]


async def test_exactly_one_first_session_per_profile_across_partitions(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=4)
    settings = worker.settings
    records: list[tuple[str | None, bytes]] = []
    expected_final: dict[str, int] = {}
    # Round-robin over profiles so claims of one profile interleave with the others'.
    for n in range(SESSIONS_PER_PROFILE):
        for app_id, profile in enumerate(PROFILES, start=1):
            sid = f"{profile}-s{n}"
            records.append((sid, event(f"{sid}-1", sid, application_id=app_id,
                                       session={"cartItems": CART})))  # fmt: skip
            # Half the sessions start anonymous and get their profile on a later event.
            if n % 2:
                records.append((sid, event(f"{sid}-0", sid, application_id=app_id,
                                           session={"profileId": ""})))  # fmt: skip
            records.append((sid, event(f"{sid}-2", sid, application_id=app_id,
                                       session={"profileId": profile})))  # fmt: skip
            records.append((sid, event(f"{sid}-3", sid, application_id=app_id,
                                       session={"state": "closed"})))  # fmt: skip
            expected_final[sid] = 4 if n % 2 else 3
    # The same profile name under another application is another profile.
    records.append(("other-app", event("o1", "other-app", application_id=99,
                                       session={"profileId": PROFILES[0]})))  # fmt: skip
    expected_final["other-app"] = 1
    anonymous = [("anon", event("a1", "anon", session={"profileId": ""}))]
    expected_final["anon"] = 1
    await send(bootstrap, settings.input_topic, records + anonymous)

    def complete(rs: list[tuple[str | None, dict[str, object]]]) -> bool:
        latest = {k: v["updateCount"] for k, v in rs}
        return all(latest.get(sid) == count for sid, count in expected_final.items())

    await read_until(bootstrap, settings.output_topic, complete, timeout=90)
    raw = await read_all(bootstrap, settings.output_topic)
    history: dict[str, list[dict[str, object]]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in raw:
        snapshot = json.loads(record.value)
        history[snapshot["integrationId"]].append(snapshot)
        if snapshot["profileId"]:
            partitions[snapshot["profileId"]].add(record.partition)

    # The test means something only if a profile's sessions really are spread out.
    assert all(len(partitions[profile]) >= 2 for profile in PROFILES), partitions

    firsts: dict[tuple[object, object], list[str]] = defaultdict(list)
    for sid, snapshots in history.items():
        final = snapshots[-1]
        # No emitted snapshot ever shows a firstSession value later contradicted.
        for snapshot in snapshots:
            if snapshot["profileId"] == final["profileId"]:
                assert snapshot["firstSession"] == final["firstSession"], sid
            if snapshot["profileId"] == "":
                assert snapshot["firstSession"] is True, sid
        counts = [s["updateCount"] for s in snapshots]
        assert counts == sorted(set(counts)), (sid, counts)
        if final["firstSession"] and final["profileId"]:
            firsts[(final["applicationId"], final["profileId"])].append(sid)

    for app_id, profile in enumerate(PROFILES, start=1):
        assert len(firsts[(app_id, profile)]) == 1, (profile, firsts[(app_id, profile)])
    assert firsts[(99, PROFILES[0])] == ["other-app"]
    assert history["anon"][-1]["firstSession"] is True

    # GET /sessions agrees with the last emitted snapshot of every session.
    for sid in ("profile-0-s0", "profile-3-s5", "anon"):
        status, body = worker.get(f"/sessions/{sid}")
        assert status == 200
        assert json.loads(body) == history[sid][-1]
