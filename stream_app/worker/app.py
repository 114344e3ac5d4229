"""The composition root: one Faust app, its topics, tables, agents and web views."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import faust
from faust.types import StreamT, TableT
from faust.types.transports import TransportT
from mode.utils.objects import cached_property

from stream_app.settings import ProcessingGuarantee, Settings
from stream_app.worker.expiry import Expiry
from stream_app.worker.logs import logging_config
from stream_app.worker.metrics import Metrics
from stream_app.worker.observe import consumer_lag, observe
from stream_app.worker.overrides import check_faust_version
from stream_app.worker.overrides.batching import DEFAULT_MAX_BATCH, BatchingConsumer, records_of
from stream_app.worker.overrides.checkpoint import Checkpoint
from stream_app.worker.overrides.local_state import protect_local_state
from stream_app.worker.overrides.membership import (
    StaticMemberAssignor,
    leave_group,
    log_kept_membership,
)
from stream_app.worker.overrides.recovery import StreamTableManager
from stream_app.worker.overrides.sends import MAX_RECORD_BATCH_BYTES, key_partition
from stream_app.worker.overrides.tables import LocalTable
from stream_app.worker.overrides.transactions import (
    SourcePartitionTransactionManager,
    TransactionalProducer,
    retry_lost_coordinator_lookups,
)
from stream_app.worker.overrides.writers import (
    AtLeastOnceWriter,
    ChangelogOffsets,
    ExactlyOnceWriter,
    GuaranteeWriter,
)
from stream_app.worker.profiles import ProfileProcessor
from stream_app.worker.sessions import SessionProcessor
from stream_app.worker.stats import StatsCombiner, StatsSource, encode_tick
from stream_app.worker.topics import DLQ_MAX_MESSAGE_BYTES, session_record_limit
from stream_app.worker.web import register_views

log = logging.getLogger(__name__)

#: Changelog topics are compacted (Faust's default); these let the log cleaner keep up, so a
#: restore reads about one record per live key rather than one per write: segments roll
#: every 64 MiB or 10 minutes (only closed segments are compacted) and are compacted once a
#: tenth of them is overwritten keys.
#: Their record limit is set as for the output topics (topics.session_record_limit).
CHANGELOG_CONFIGS = {
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}


#: Per RocksDB database (one per table partition): Faust's defaults (three 64 MiB write
#: buffers and a 2 GiB block cache each) let memory grow with every write until a memtable
#: flushes, hundreds of MiB for a few thousand sessions per partition. The state is small
#: (a few hundred bytes per session) and read once per batch, so small buffers suffice: with
#: 2 MiB the peak RSS of a worker with 50,000 sessions went down by about 20 MiB against 4 MiB,
#: at no measurable cost in events/s (docs/performance.md, "Memory").
ROCKSDB_OPTIONS = {
    "write_buffer_size": 2 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 2 * 1024 * 1024,
}


#: The `stats` table holds a few rows per application and window, read and written once per
#: batch of partials: a fraction of the sessions' buffers and cache is plenty.
STATS_ROCKSDB_OPTIONS = {
    "write_buffer_size": 512 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 512 * 1024,
}


class StreamApp(faust.App):
    """Faust app whose exactly-once sends join the transaction of the event being processed."""

    def _new_transport(self) -> TransportT:
        transport = super()._new_transport()
        # Per instance, so that other apps in the same process keep Faust's behaviour.
        transport.TransactionManager = SourcePartitionTransactionManager  # type: ignore[misc]
        transport.Producer = TransactionalProducer  # type: ignore[misc]
        retry_lost_coordinator_lookups()
        # One event per fetched batch of a partition for the agents' topics (batching.py).
        transport.Consumer = BatchingConsumer  # type: ignore[misc]
        return transport

    #: Topics whose records reach the agents in batches (set by create_worker).
    batched_topics: frozenset[str] = frozenset()
    #: The most records in one batch.
    max_batch: int = DEFAULT_MAX_BATCH
    #: The worker's settings and its commit (set by create_worker).
    settings: Settings
    checkpoint: Checkpoint

    async def on_first_start(self) -> None:
        """Before any table opens: local tables left by a crashed run are dropped and rebuilt.

        Also the place to warn, in the worker's log format, about sessions served to anyone.
        """
        await super().on_first_start()
        protect_local_state(self, Path(self.conf.datadir))
        if self.settings.http_exposed_without_token:
            log.warning(
                "HTTP binds %s without a token: anyone who reaches this address can read "
                "sessions (GET /sessions/...); set STREAM_APP_HTTP_TOKEN (or _FILE) or "
                "STREAM_APP_WEB_HOST=127.0.0.1",
                self.settings.web_host,
            )

    async def on_started(self) -> None:
        """Once started: what start-up made is frozen out of the cycle collector's passes."""
        await super().on_started()
        # Modules, Faust's and aiokafka's services: they live as long as the process, and every
        # full collection would walk them again (20-30 ms each, against 1-2 ms with them frozen:
        # a p99 stall whenever one runs; docs/performance.md).
        gc.collect()
        gc.freeze()

    @cached_property
    def metrics(self) -> Metrics:
        """Counters for GET /metrics."""
        return Metrics()


@dataclass(frozen=True, slots=True)
class Worker:
    """Everything `create_worker` built, for the CLI, the web views and tests."""

    app: StreamApp
    settings: Settings
    sessions: SessionProcessor
    profiles: ProfileProcessor
    #: The statistics' combiner; None when statistics are off.
    stats: StatsCombiner | None = None

    def after_stop(self) -> None:
        """Once Faust's worker has returned: leave the group if so configured and clean."""
        if not self.app.checkpoint.stopped_cleanly:
            return
        if self.settings.leave_group_on_stop:
            # A static member never leaves by itself (membership.py).
            asyncio.run(leave_group(self.settings))
        else:
            log_kept_membership(self.settings)


def create_worker(settings: Settings, partitions: int, replication: int = 1) -> Worker:
    """Build the app for topics that all have `partitions` partitions (see `ensure_topics`);
    the topics Faust creates (the changelogs) get `replication` replicas."""
    check_faust_version()
    app = StreamApp(
        settings.app_id,
        # Faust lets an environment variable replace any keyword argument given here
        # (PROCESSING_GUARANTEE, WEB_PORT, BROKER_URL, ...): an empty mapping leaves the
        # STREAM_APP_* settings as the only configuration.
        env={},
        broker=settings.broker,
        broker_credentials=settings.security.faust_credentials(),
        broker_session_timeout=settings.session_timeout,
        # Faust refuses a session timeout longer than the request timeout.
        broker_request_timeout=max(90.0, settings.session_timeout + 30.0),
        table_standby_replicas=settings.standby_replicas,
        store="rocksdb://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_bind=settings.web_host,
        # Faust's own views show raw table contents and internals: only ours are served.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        processing_guarantee=settings.processing_guarantee.value,
        # Static membership: a restarted worker gets its partitions back at once, without a
        # rebalance and without waiting out its killed predecessor's session timeout.
        consumer_group_instance_id=settings.group_instance_id,
        topic_partitions=partitions,
        topic_replication_factor=replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # On stop and on rebalance, wait until every event taken from the stream is acked
        # before the last commit. Faust reads it only then, never per event: no throughput cost
        # (measured, docs/performance.md).
        stream_wait_empty=True,
        # Queued events per agent (and changelog events in a restore). Each is a batch of up to
        # max_batch records here (batching.py): Faust's 4,096 would let the fetcher read a whole
        # backlog into memory ahead of the agent.
        stream_buffer_maxsize=16,
        broker_commit_every=1000,
        broker_commit_interval=settings.commit_interval,
        producer_linger_ms=5,
        # The agents send whole record batches (overrides/sends.py).
        producer_max_batch_size=MAX_RECORD_BATCH_BYTES,
        table_cleanup_interval=3600.0,
        autodiscover=False,
        # Per partition and fetch, Kafka's default (Faust: 4 MiB). With 8 partitions of each of
        # four batched topics it bounds what the consumer holds; 4 MiB cost about 125 MiB of
        # peak RSS at 50,000 sessions (docs/performance.md, "Memory").
        consumer_max_fetch_size=1024 * 1024,
        producer_max_request_size=DLQ_MAX_MESSAGE_BYTES,
        # Recovery that restores every committed changelog record (see recovery.py).
        TableManager=StreamTableManager,
        # A static member restarted under another address (membership.py).
        PartitionAssignor=StaticMemberAssignor,
        # Read by Faust's worker when it sets up logging: Faust's own lines take it too.
        logging_config=logging_config(settings.log_format),
    )
    if settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        app.conf.consumer_api_version = "auto"

    def topic(*names: str) -> faust.TopicT:
        # Key and value bytes pass through Faust untouched: decoding is ours, at one boundary.
        return app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )

    inbox_topics = [settings.input_topic, settings.rekeyed_topic, settings.verdicts_topic]
    if settings.stats:
        inbox_topics.append(settings.stats_ticks_topic)
    session_inbox = topic(*inbox_topics)
    claims = topic(settings.claims_topic)

    # bytes in, bytes out: Faust picks its "raw" serializer for both.
    def table(name: str, options: dict[str, int] = ROCKSDB_OPTIONS) -> TableT[bytes, bytes]:
        return app.Table(
            name,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            extra_topic_configs={
                **settings.topic_configs,
                **CHANGELOG_CONFIGS,
                "max.message.bytes": str(session_record_limit(settings)),
            },
            options=options,
        )

    sessions_table = table("sessions")
    profiles_table = table("profiles")
    # The expiry index of the sessions (stream_app/worker/expiry.py).
    expiries_table = table("expiries")
    tables = [sessions_table, profiles_table, expiries_table]
    # The statistics' windows per application (stream_app/worker/stats.py).
    stats_table = table("stats", STATS_ROCKSDB_OPTIONS) if settings.stats else None
    if stats_table is not None:
        tables.append(stats_table)
    # The agents' topics arrive in batches (batching.py), and so do the changelogs a restore
    # reads (recovery.py).
    app.batched_topics = frozenset(
        [
            *inbox_topics,
            settings.claims_topic,
            *([settings.stats_partials_topic] if settings.stats else []),
            *(t.changelog_topic.get_topic_name() for t in tables),
        ]
    )
    app.max_batch = settings.max_batch

    metrics: Metrics = app.metrics
    observe(app, settings, metrics)
    # The guarantee is chosen here, once: its writer writes every batch and its commit
    # commits them (overrides/writers.py, overrides/checkpoint.py).
    changelog = ChangelogOffsets()
    writer: GuaranteeWriter
    if settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        writer = ExactlyOnceWriter(app, changelog, metrics)
    else:
        writer = AtLeastOnceWriter(app, changelog, metrics)
    app.settings = settings
    app.checkpoint = checkpoint = Checkpoint(app, writer, metrics, settings.input_topic)
    sessions_store, profiles_store = LocalTable(sessions_table), LocalTable(profiles_table)
    expiries_store = LocalTable(expiries_table)
    expiry = (
        Expiry(
            settings=settings,
            table=sessions_store,
            index=expiries_store,
            writer=writer.for_table(expiries_store),
            metrics=metrics,
        )
        if settings.retention.enabled
        else None
    )
    stats_source = StatsSource(settings, metrics, partitions) if settings.stats else None
    sessions = SessionProcessor(
        settings=settings,
        table=sessions_store,
        writer=writer.for_table(sessions_store),
        metrics=metrics,
        expiry=expiry,
        stats=stats_source,
    )
    profiles = ProfileProcessor(
        settings=settings,
        table=profiles_store,
        writer=writer.for_table(profiles_store),
        metrics=metrics,
        partitions=partitions,
    )

    # concurrency=1 keeps each partition's events in order, as the contract requires.
    # The checkpoint keeps commits out of the middle of a batch (overrides/checkpoint.py).
    @app.agent(session_inbox, concurrency=1, name="sessions")
    async def process_sessions(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await checkpoint.handle(event, sessions.handle_batch(records_of(event.message)))

    @app.agent(claims, concurrency=1, name="profiles")
    async def process_claims(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await checkpoint.handle(event, profiles.handle_batch(records_of(event.message)))

    stats: StatsCombiner | None = None
    if stats_table is not None and stats_source is not None:
        stats_store = LocalTable(stats_table)
        stats = StatsCombiner(
            settings=settings,
            table=stats_store,
            writer=writer.for_table(stats_store),
            metrics=metrics,
            partitions=partitions,
            partition_of=lambda key: key_partition(key, partitions),
        )
        combiner = stats

        @app.agent(topic(settings.stats_partials_topic), concurrency=1, name="stats")
        async def process_stats(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                await checkpoint.handle(event, combiner.handle_batch(records_of(event.message)))

        _tick_idle_partitions(app, settings, stats_source)

    register_views(app, sessions_table, sessions, metrics, settings.http_token, stats_table, stats)
    return Worker(app=app, settings=settings, sessions=sessions, profiles=profiles, stats=stats)


def _tick_idle_partitions(app: StreamApp, settings: Settings, source: StatsSource) -> None:
    """A timer that sends a tick to each assigned input partition that has gone idle, so that
    statistics windows close while traffic has stopped there (stream_app/worker/stats.py)."""
    idle = float(settings.stats_idle)

    @app.timer(interval=min(idle / 2, 1.0))  # type: ignore[untyped-decorator]
    async def tick_idle_partitions() -> None:
        if app.rebalancing or app.consumer is None:
            return
        if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        # A tick is a hint: whatever fails here is logged, and a later check sends another
        # (an exception escaping a timer would stop the worker).
        try:
            input_topic, rekeyed_topic = settings.input_topic, settings.rekeyed_topic
            actives = app.assignor.assigned_actives()
            assigned = [tp.partition for tp in actives if tp.topic == input_topic]
            lags = consumer_lag(app)
            # Input partitions with a known lag, plus their re-keyed events' (not fetched: 0).
            lag = {
                p: n + lags.get((rekeyed_topic, p), 0)
                for (topic, p), n in lags.items()
                if topic == input_topic
            }
            for partition in source.idle_partitions(assigned, lag, time.monotonic(), idle):
                await app.producer.send(
                    settings.stats_ticks_topic, None, encode_tick(time.time()), partition, None,
                    None,
                )  # fmt: skip
                app.metrics.stats_ticks += 1
        except Exception as exc:
            log.warning("could not send a statistics tick: %s: %s", type(exc).__name__, exc)
