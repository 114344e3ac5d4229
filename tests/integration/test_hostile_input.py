"""Hostile input through a real worker on the real broker: nothing a producer writes stops a
partition. Every record ends as an output or a dead letter, later records are processed, and the
same worker process stays alive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from dev.harness.kafka import client_security
from dev.harness.workers import WorkerProcess
from stream_app.domain import ProfileClaim, ProfileVerdict, encode_claim, encode_verdict
from stream_app.settings import ProcessingGuarantee
from tests.integration.helpers import event, read_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

Headers = list[tuple[str, bytes]]
FORGED_BAD_PARTITION: Headers = [
    ("source-topic", b"elsewhere"), ("source-partition", b"abc"), ("source-offset", b"1"),
]  # fmt: skip
FORGED_NOT_UTF8: Headers = [
    ("source-topic", b"\xff\xfe\xfd"), ("source-partition", b"1"), ("source-offset", b"1"),
]  # fmt: skip
FORGED_WELL_FORMED: Headers = [
    ("source-topic", b"elsewhere"), ("source-partition", b"7"), ("source-offset", b"99"),
]  # fmt: skip
REPEATED: Headers = [("source-topic", b"a"), ("source-topic", b"b"), ("source-offset", b"1")]
OVERSIZED: Headers = [("source-topic", b"x" * 100_000), ("source-partition", b"1" * 5000)]


@pytest.mark.parametrize("guarantee", list(ProcessingGuarantee))
async def test_hostile_records_end_as_outputs_or_dead_letters_and_the_worker_lives(
    start_worker: Callable[..., WorkerProcess], bootstrap: str, guarantee: ProcessingGuarantee
) -> None:
    worker = start_worker(partitions=1, guarantee=guarantee)
    assert worker.process is not None
    pid = worker.process.pid
    settings = worker.settings
    long_key = b"k" * 20_000
    nul_bidi = "nul\x00bidi\u202eid"
    # (topic, key, value, headers, expected outcome): ("dead", code, provenance key or None)
    # or ("snapshot", integrationId).
    cases: list[tuple[str, bytes | None, bytes | None, Headers | None, tuple[Any, ...]]] = [
        (settings.input_topic, b"f1", b"{not json", FORGED_BAD_PARTITION,
         ("dead", "malformed_json", "f1")),
        (settings.input_topic, b"f2", event("e-f2", "f2"), FORGED_NOT_UTF8, ("snapshot", "f2")),
        (settings.input_topic, b"other", event("e-f3", "f3"), FORGED_WELL_FORMED,
         ("dead", "key_mismatch", "other")),
        (settings.input_topic, b"f4", event("e-f4", "f4"), REPEATED, ("snapshot", "f4")),
        (settings.input_topic, b"f5", event("e-f5", "f5"), OVERSIZED, ("snapshot", "f5")),
        (settings.input_topic, b"tomb", None, None, ("dead", "malformed_json", "tomb")),
        (settings.input_topic, b"empty", b"", None, ("dead", "malformed_json", "empty")),
        (settings.input_topic, long_key, event("e-long", "long"), None,
         ("dead", "key_mismatch", long_key.decode())),
        (settings.input_topic, nul_bidi.encode(), event("e-nul", nul_bidi), None,
         ("snapshot", nul_bidi)),
        # A session grown past STREAM_APP_MAX_SESSION_BYTES (512 KiB): the third 200 kB
        # attribute is refused, and the session goes on from its previous state.
        *[(settings.input_topic, b"big", event(f"e-big{n}", "big", session={
            "attributes": {f"a{n}": "x" * 200_000}}), None,
           ("dead", "session_too_large", "big") if n == 3 else ("snapshot", "big"))
          for n in (1, 2, 3)],
        (settings.input_topic, b"big", event("e-big4", "big", session={"coupon": "AFTER"}),
         None, ("snapshot", "big")),
        # On the re-keyed topic, malformed provenance headers are ignored.
        (settings.rekeyed_topic, b"r1", b"[]", FORGED_BAD_PARTITION,
         ("dead", "malformed_json", "r1")),
        # The internal topics: garbage, and well-formed records the worker never wrote.
        (settings.verdicts_topic, b"v1", b"\x00garbage", None,
         ("dead", "invalid_internal_record", "v1")),
        (settings.claims_topic, b"c1", b"{}", None, ("dead", "invalid_internal_record", "c1")),
        (settings.claims_topic, b"1:p9",
         encode_claim(ProfileClaim(1, "p9", "nobody")), [("session-partition", b"5")],
         ("dead", "invalid_internal_record", "1:p9")),
    ]  # fmt: skip
    if guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        # A verdict for a session the worker never claimed for (at_least_once counts it only:
        # there a verdict can legitimately come before its session's state, see sessions.py).
        forged = encode_verdict(ProfileVerdict(1, "p1", "ghost", True))
        cases.append(
            (settings.verdicts_topic, b"ghost", forged, None,
             ("dead", "invalid_internal_record", "ghost"))
        )  # fmt: skip

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=1024 * 1024, **client_security()
    )
    await producer.start()
    offsets: list[tuple[str, int]] = []
    try:
        for topic, key, value, headers, _ in cases:
            sent = await producer.send_and_wait(topic, value, key=key, headers=headers)
            offsets.append((topic, sent.offset))
        # A good record after all of them is applied by the same worker.
        await producer.send_and_wait(settings.input_topic, event("e-after", "after"), key=b"after")
    finally:
        await producer.stop()

    expected_dead = [(case, where) for case, where in zip(cases, offsets, strict=True)
                     if case[4][0] == "dead"]  # fmt: skip
    dead = await read_until(bootstrap, settings.dlq_topic, lambda rs: len(rs) >= len(expected_dead))
    snapshots = await read_until(
        bootstrap, settings.output_topic, lambda rs: any(k == "after" for k, _ in rs)
    )
    by_source = {
        (r["source"]["topic"], r["source"]["offset"]): (key, r) for key, r in dead
    }  # fmt: skip
    assert len(by_source) == len(dead) == len(expected_dead)
    for (topic, key, value, _, (_, code, source_key)), where in expected_dead:
        dead_key, rejection = by_source[where]
        assert rejection["error"]["code"] == code, (where, rejection["error"])
        # Provenance is where the record was read, whatever its headers claimed.
        assert rejection["source"]["topic"] == topic
        assert rejection["source"]["key"] == source_key
        assert dead_key == (None if key is None else key.decode())
        assert rejection["event"].encode() == (value or b"") or (
            rejection["eventEncoding"] == "base64"
        )
    produced = {key for key, _ in snapshots}
    for _, _, _, _, outcome in cases:
        if outcome[0] == "snapshot":
            assert outcome[1] in produced
    assert "after" in produced
    [*_, (_, big)] = [(k, v) for k, v in snapshots if k == "big"]
    assert (big["coupon"], sorted(big["attributes"]), big["updateCount"]) == (
        "AFTER", ["a1", "a2"], 3,
    )  # fmt: skip
    assert worker.alive
    assert worker.process.pid == pid
