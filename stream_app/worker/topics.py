"""Create the worker's topics when missing, before Faust subscribes to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream_app.settings import Settings
from stream_app.worker.overrides.sends import MAX_RECORD_BATCH_BYTES

log = logging.getLogger(__name__)

#: Largest dead-letter record: a 1 MiB value of control characters is 6 MiB as JSON text.
DLQ_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Room above a session's bytes for its key (at most 4,000 bytes), headers and batch framing.
RECORD_HEADROOM = 64 * 1024


def session_record_limit(settings: Settings) -> int:
    """`max.message.bytes` of the topics whose records hold sessions or batches of them.

    A record batch the worker writes holds up to MAX_RECORD_BATCH_BYTES of records, or one
    record larger than that; a session record is at most `max_session_bytes` plus its key.
    """
    return max(MAX_RECORD_BATCH_BYTES, settings.max_session_bytes) + RECORD_HEADROOM


#: How long to wait for newly created topics to show their partitions.
METADATA_TIMEOUT_SECONDS = 30.0


class TopicLayoutError(RuntimeError):
    """Existing topics cannot be co-partitioned the way the worker needs."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic the worker needs: name, partitions and cleanup policy."""

    name: str
    partitions: int
    compacted: bool = False
    max_message_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """What every topic of the worker shares: the partition count and the replication factor."""

    partitions: int
    replication: int


async def ensure_topics(settings: Settings) -> TopicLayout:
    """Create missing topics; return the partition count all of them share (the input's) and
    the replication factor of the ones the worker creates (Faust's changelogs included)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-admin",
        **settings.security.client_kwargs(),
    )
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        replication = settings.replication_for(len(cluster["brokers"]))
        await _create_missing(
            admin,
            [TopicSpec(settings.input_topic, settings.partitions)],
            replication,
            settings.topic_configs,
        )
        partitions = (await _partition_counts(admin, [settings.input_topic]))[settings.input_topic]
        # Outputs share the input's key and partition count so that a session's snapshot,
        # transition and rejection land on the partition its events came from.
        # Explicit record limits, not the broker's default: a session up to its limit
        # (STREAM_APP_MAX_SESSION_BYTES) always fits the topics it is written to.
        limit = session_record_limit(settings)
        specs = [
            TopicSpec(settings.output_topic, partitions, compacted=True, max_message_bytes=limit),
            TopicSpec(settings.transitions_topic, partitions, max_message_bytes=limit),
            # A dead-letter record carries the rejected value as JSON text or base64, which can
            # be several times the size of the largest record the input topic accepts.
            TopicSpec(settings.dlq_topic, partitions, max_message_bytes=DLQ_MAX_MESSAGE_BYTES),
            TopicSpec(settings.claims_topic, partitions, max_message_bytes=limit),
            TopicSpec(settings.verdicts_topic, partitions, max_message_bytes=limit),
            # A re-keyed event is an input record as it arrived, plus three small headers.
            TopicSpec(settings.rekeyed_topic, partitions, max_message_bytes=DLQ_MAX_MESSAGE_BYTES),
        ]
        if settings.stats:
            # Statistics (stream_app/worker/stats.py): the final windows, keyed by
            # applicationId; the partials and watermarks the combiner adds up, and the ticks
            # of idle partitions, read with the partition's events.
            specs += [
                TopicSpec(settings.stats_topic, partitions, max_message_bytes=limit),
                TopicSpec(settings.stats_partials_topic, partitions, max_message_bytes=limit),
                TopicSpec(settings.stats_ticks_topic, partitions, max_message_bytes=limit),
            ]
        await _create_missing(admin, specs, replication, settings.topic_configs)
        counts = await _partition_counts(admin, settings.internal_topics)
        wrong = {name: n for name, n in counts.items() if n != partitions}
        if wrong:
            raise TopicLayoutError(
                f"internal topics {wrong} must have {partitions} partitions like "
                f"{settings.input_topic!r}; delete them (they are rebuilt) or fix the input topic"
            )
        return TopicLayout(partitions, replication)
    finally:
        await admin.close()


async def _create_missing(
    admin: AIOKafkaAdminClient,
    specs: list[TopicSpec],
    replication: int,
    shared_configs: dict[str, str],
) -> None:
    existing = set(await admin.list_topics())
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return
    new_topics = [
        NewTopic(
            name=spec.name,
            num_partitions=spec.partitions,
            replication_factor=replication,
            topic_configs={**shared_configs, **_topic_configs(spec)},
        )
        for spec in missing
    ]
    # Another worker may create one between our listing and our request: that is fine.
    with contextlib.suppress(TopicAlreadyExistsError):
        await admin.create_topics(new_topics)
    log.info("created topics %s", [spec.name for spec in missing])


def _topic_configs(spec: TopicSpec) -> dict[str, str]:
    configs = {"cleanup.policy": "compact" if spec.compacted else "delete"}
    if spec.max_message_bytes is not None:
        configs["max.message.bytes"] = str(spec.max_message_bytes)
    return configs


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # A topic created a moment ago may be described with no partitions until its metadata
    # has propagated: ask again until every topic shows its partitions.
    deadline = time.monotonic() + METADATA_TIMEOUT_SECONDS
    while True:
        described = await admin.describe_topics(names)
        counts = {topic["topic"]: len(topic["partitions"]) for topic in described}
        if all(counts.get(name, 0) > 0 for name in names) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)
