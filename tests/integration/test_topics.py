"""The worker creates missing topics and co-partitions its internal ones with the input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dev.harness.kafka import client_security
from dev.harness.workers import settings_for
from stream_app.worker.topics import (
    DLQ_MAX_MESSAGE_BYTES,
    TopicLayout,
    TopicLayoutError,
    ensure_topics,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def describe(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str, str]]:
    """(partitions, cleanup.policy, max.message.bytes) of each topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    await admin.start()
    try:
        topics = await admin.describe_topics(names)
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    config: dict[tuple[str, str], str] = {}
    for response in configs:
        for resource in response.resources:
            for entry in resource[4]:
                config[(resource[3], entry[0])] = entry[1]
    return {
        t["topic"]: (
            len(t["partitions"]),
            config[(t["topic"], "cleanup.policy")],
            config[(t["topic"], "max.message.bytes")],
        )
        for t in topics
    }


async def describe_config(bootstrap: str, topic: str, name: str) -> str:
    """One config value of a topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    return {entry[0]: entry[1] for resource in response.resources for entry in resource[4]}[name]


async def test_missing_topics_are_created_with_partitions_and_cleanup_policy(
    bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    settings = settings_for(bootstrap, unique_name("topics"), Path("unused"), partitions=5)
    settings = replace(settings, min_insync_replicas=1)
    # One broker here: one replica (the number of brokers, at most 3).
    assert await ensure_topics(settings) == TopicLayout(partitions=5, replication=1)
    # A second start finds everything in place and changes nothing.
    assert await ensure_topics(settings) == TopicLayout(partitions=5, replication=1)
    described = await describe(bootstrap, [
        settings.input_topic, settings.output_topic, settings.transitions_topic,
        settings.dlq_topic, settings.claims_topic, settings.verdicts_topic,
        settings.rekeyed_topic,
    ])  # fmt: skip
    assert described[settings.output_topic][:2] == (5, "compact")
    for name in (settings.input_topic, settings.transitions_topic, settings.dlq_topic):
        assert described[name][:2] == (5, "delete")
    assert described[settings.dlq_topic][2] == str(DLQ_MAX_MESSAGE_BYTES)
    for name in (settings.claims_topic, settings.verdicts_topic, settings.rekeyed_topic):
        assert described[name][0] == 5
    # Explicit record limits that fit a session of the largest allowed size (512 KiB default)
    # plus its key, whatever the broker's default.
    session_topics = (settings.output_topic, settings.transitions_topic,
                      settings.claims_topic, settings.verdicts_topic)  # fmt: skip
    for name in session_topics:
        assert int(described[name][2]) >= settings.max_session_bytes + 4000
    assert described[settings.rekeyed_topic][2] == str(DLQ_MAX_MESSAGE_BYTES)
    insync = await describe_config(bootstrap, settings.output_topic, "min.insync.replicas")
    assert insync == "1"


async def test_existing_input_topic_is_used_as_it_is(
    bootstrap: str,
    unique_name: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    settings = settings_for(bootstrap, unique_name("existing"), Path("unused"), partitions=8)
    await create_topic(settings.input_topic, partitions=3)
    # The input's 3 partitions win over STREAM_APP_PARTITIONS, for every keyed topic.
    assert (await ensure_topics(settings)).partitions == 3
    described = await describe(bootstrap, [settings.output_topic, settings.verdicts_topic])
    assert described[settings.output_topic][:2] == (3, "compact")
    assert described[settings.verdicts_topic][0] == 3


async def test_internal_topics_that_cannot_be_co_partitioned_are_refused(
    bootstrap: str,
    unique_name: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    settings = settings_for(bootstrap, unique_name("mismatch"), Path("unused"), partitions=4)
    await create_topic(settings.verdicts_topic, partitions=2)
    with pytest.raises(TopicLayoutError, match="must have 4 partitions"):
        await ensure_topics(settings)
