"""The local broker is a real Kafka: records survive a produce -> consume round trip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_produce_consume_roundtrip_keeps_keys_values_and_order(
    create_topic: Callable[..., Awaitable[str]],
    produce: Callable[..., Awaitable[None]],
    consume: Callable[..., Awaitable[list[Any]]],
    unique_name: Callable[[str], str],
) -> None:
    topic = await create_topic(unique_name("roundtrip"), partitions=1)
    sent = [(f"key-{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(50)]
    sent.append((None, b"no key"))

    await produce(topic, sent)
    received = await consume(topic, count=len(sent))

    assert [(r.key, r.value) for r in received] == sent
    assert [r.offset for r in received] == list(range(len(sent)))
