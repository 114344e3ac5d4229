"""The local broker is a real Kafka: records survive a produce -> consume round trip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from dev.harness.kafka import produce_all, read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_produce_consume_roundtrip_keeps_keys_values_and_order(
    bootstrap: str,
    create_topic: Callable[..., Awaitable[str]],
    unique_name: Callable[[str], str],
) -> None:
    topic = await create_topic(unique_name("roundtrip"), partitions=1)
    sent: list[tuple[str | bytes | None, bytes]] = [
        (f"key-{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(50)
    ]
    sent.append((None, b"no key"))

    assert await produce_all(bootstrap, topic, sent) == len(sent)
    received = await read_all(bootstrap, topic)

    assert [(r.key, r.value) for r in received] == sent
    assert [r.offset for r in received] == list(range(len(sent)))
