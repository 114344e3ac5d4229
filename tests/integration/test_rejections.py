"""Every rejection code through Kafka, each checked as the full dead-letter record."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from dev.harness.kafka import read_all
from dev.harness.settle import wait_until
from dev.harness.workers import WorkerProcess
from tests.integration.helpers import event, metrics, read_json, read_until, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CART = [{"sku": "A", "quantity": 2, "price": 10.0}]


async def test_every_rejection_code_lands_on_the_dead_letter_topic(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=1)
    topic = worker.settings.input_topic
    invalid_utf8 = b'{"eventId": "\xff\xfe"}'
    # (key, value, expected code, a path the message must name or None)
    cases: list[tuple[str | None, bytes, str, str | None]] = [
        ("s-json", b'{"eventId": "x", ', "malformed_json", None),
        ("s-array", b"[1, 2, 3]", "malformed_json", None),
        ("s-utf8", invalid_utf8, "malformed_json", None),
        ("s-invalid", event("i1", "s-invalid", session={"cartItems": [
            {"sku": "A", "quantity": 0, "price": 1.0}]}),
         "invalid_event", "$.session.cartItems[0].quantity"),
        ("other-key", event("k1", "s-key"), "key_mismatch", "$.integrationId"),
        ("s-app", event("a1", "s-app", application_id=7), None, None),
        ("s-app", event("a2", "s-app", application_id=8), "application_mismatch",
         "$.applicationId"),
        ("s-missing", event("m1", "s-missing", type_="return",
                            returnedCartItems=[{"position": 0}]), "session_not_found", None),
        ("s-locked", event("l1", "s-locked", session={"cartItems": CART, "state": "closed"}),
         None, None),
        ("s-locked", event("l2", "s-locked", session={"coupon": "LATE"}), "session_locked",
         "$.session.coupon"),
        ("s-trans", event("t1", "s-trans", session={"state": "cancelled"}),
         "invalid_transition", "$.session.state"),
        ("s-return", event("r1", "s-return", session={"cartItems": CART, "state": "closed"}),
         None, None),
        ("s-return", event("r2", "s-return", type_="return",
                           returnedCartItems=[{"position": 0, "quantity": 3}]),
         "invalid_return", "$.returnedCartItems[0]"),
    ]  # fmt: skip
    await send(bootstrap, topic, [(key, value) for key, value, _, _ in cases])
    expected = [(offset, case) for offset, case in enumerate(cases) if case[2] is not None]

    dead = await read_until(
        bootstrap, worker.settings.dlq_topic, lambda rs: len(rs) >= len(expected)
    )
    assert len(dead) == len(expected)
    now = datetime.now(UTC)
    for (key, rejection), (offset, (sent_key, value, code, path)) in zip(
        dead, expected, strict=True
    ):
        assert key == sent_key
        assert set(rejection) == {"error", "event", "eventEncoding", "source", "rejectedAt"}
        assert rejection["error"]["code"] == code
        message = rejection["error"]["message"]
        assert isinstance(message, str)
        assert message
        if path is not None:
            assert path in message, (code, message)
        if value == invalid_utf8:
            assert rejection["eventEncoding"] == "base64"
            assert base64.b64decode(rejection["event"]) == value
        else:
            assert rejection["eventEncoding"] == "utf-8"
            assert rejection["event"].encode() == value
        assert rejection["source"] == {
            "topic": topic, "partition": 0, "offset": offset, "key": sent_key,
        }  # fmt: skip
        assert rejection["rejectedAt"].endswith("Z")
        assert abs(now - datetime.fromisoformat(rejection["rejectedAt"])) < timedelta(minutes=5)

    await wait_until(
        lambda: (
            metrics(worker).value("stream_app_events_rejected_total", code="invalid_return") == 1
        ),
        what="rejection metrics",
    )
    for code in {c for _, _, c, _ in cases if c is not None}:
        expected_n = sum(1 for _, _, c, _ in cases if c == code)
        assert metrics(worker).value("stream_app_events_rejected_total", code=code) == expected_n

    # The worker kept running: a good event after all of that is applied.
    await send(bootstrap, topic, [("s-after", event("ok", "s-after"))])
    snapshots = await read_until(
        bootstrap, worker.settings.output_topic,
        lambda rs: any(k == "s-after" for k, _ in rs),
    )  # fmt: skip
    # Rejected events changed nothing: s-locked and s-return are still at updateCount 1.
    latest = {key: value for key, value in snapshots}
    assert latest["s-locked"]["updateCount"] == 1
    assert latest["s-locked"]["coupon"] == ""
    assert latest["s-return"]["cartItems"][0]["returnedQuantity"] == 0
    assert "s-trans" not in latest
    assert "s-missing" not in latest


async def test_duplicate_event_ids_produce_nothing(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=2)
    settings = worker.settings
    first = event("d1", "s-dup", session={"cartItems": CART})
    second = event("d2", "s-dup", session={"coupon": "C1"})
    # The duplicate of d1 carries a different body: the eventId alone decides.
    replayed = event("d1", "s-dup", session={"coupon": "IGNORED"})
    await send(bootstrap, settings.input_topic, [("s-dup", first), ("s-dup", second)] * 3)
    await send(
        bootstrap, settings.input_topic, [("s-dup", replayed), ("s-end", event("e", "s-end"))]
    )

    snapshots = await read_until(
        bootstrap, settings.output_topic, lambda rs: any(k == "s-end" for k, _ in rs)
    )
    mine = [value for key, value in snapshots if key == "s-dup"]
    assert [s["updateCount"] for s in mine] == [1, 2]
    assert mine[-1]["coupon"] == "C1"
    transitions = [t for k, t in await read_json(bootstrap, settings.transitions_topic)
                   if k == "s-dup"]  # fmt: skip
    assert len(transitions) == 1
    assert await read_json(bootstrap, settings.dlq_topic) == []
    assert metrics(worker).value("stream_app_events_duplicate_total") == 5


async def test_event_without_key_is_applied_on_its_session_partition(
    start_worker: Callable[..., WorkerProcess], bootstrap: str
) -> None:
    worker = start_worker(partitions=4)
    settings = worker.settings
    # Null-keyed records land on any partition, so Kafka gives no order between them and
    # the session's keyed records: each step waits for the previous one here.
    await send(bootstrap, settings.input_topic, [(None, event("n1", "s-nokey", session={
        "cartItems": CART}))])  # fmt: skip
    await read_until(bootstrap, settings.output_topic, lambda rs: len(rs) == 1)
    # A null-keyed copy of n1 (a duplicate whichever way it is ordered) and a keyed n2.
    await send(bootstrap, settings.input_topic, [(None, event("n1", "s-nokey")), ("s-nokey", event(
        "n2", "s-nokey", session={"state": "closed"}))])  # fmt: skip
    snapshots = await read_until(bootstrap, settings.output_topic, lambda rs: len(rs) == 2)
    await send(bootstrap, settings.input_topic, [(None, event("n3", "s-nokey", session={
        "coupon": "LATE"}))])  # fmt: skip
    dead = await read_until(bootstrap, settings.dlq_topic, lambda rs: len(rs) >= 1)

    # Both keyed and re-keyed events of the session were applied to the same state,
    # on the partition its key hashes to, and the null-keyed duplicate was skipped.
    records = await read_all(bootstrap, settings.output_topic)
    assert [json.loads(r.value)["updateCount"] for r in records] == [1, 2]
    assert len({r.partition for r in records}) == 1
    assert snapshots[-1][1]["state"] == "closed"
    assert snapshots[-1][1]["cartItems"][0]["sku"] == "A"
    # The rejection names where the user's producer put the record, and its null key.
    key, rejection = dead[0]
    assert key is None
    assert rejection["error"]["code"] == "session_locked"
    assert rejection["source"]["topic"] == settings.input_topic
    assert rejection["source"]["key"] is None
    assert json.loads(rejection["event"])["eventId"] == "n3"
    status, body = worker.get("/sessions/s-nokey")
    assert status == 200
    assert json.loads(body) == snapshots[-1][1]
