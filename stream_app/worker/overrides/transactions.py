"""Faust's transaction manager, with the worker's commit and live producers after rebalances.

Faust creates one `TransactionManager` per consumer (under either guarantee). This one

- makes the consumer's commit the checkpoint's (`Consumer.commit` is what Faust's timer, its
  `wait_empty` and its `commit_every` call): checkpoint.py says what a commit does;
- keeps exactly one usable transactional producer per actively assigned source partition
  across rebalances (`on_rebalance`);
- has its transactional producers retry a refused request after 20 ms, not 100
  (`TransactionalProducer`);
- has them look for their transaction coordinator again when the connection to it is lost
  mid-lookup, instead of failing the producer for good (`retry_lost_coordinator_lookups`).

Why Faust's own machinery is replaced here: docs/design.md, "Where the worker replaces Faust's
machinery".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.producer.sender import Sender
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import Producer
from faust.types import TP
from faust.types.enums import ProcessingGuarantee

log = logging.getLogger(__name__)


#: How soon aiokafka retries a request the broker refused. A transaction that begins right
#: after a commit is refused (CONCURRENT_TRANSACTIONS) until the commit's markers are written,
#: a few ms later; aiokafka then waits its default 100 ms (20 ms only for the first partitions
#: of a transaction), and so the outputs of the batches after nearly every commit did.
#: Measured with dev/bench/transactions.py: commit p99 130 ms -> 48 ms (docs/performance.md).
TRANSACTIONAL_RETRY_BACKOFF_MS = 20


class TransactionalProducer(Producer):
    """Faust's aiokafka producer; under exactly_once its producers retry sooner."""

    def _settings_extra(self) -> Any:
        settings = dict(super()._settings_extra())
        guarantee: Any = self.app.conf.processing_guarantee  # Faust types it as the enum class
        if guarantee == ProcessingGuarantee.EXACTLY_ONCE:
            settings["retry_backoff_ms"] = TRANSACTIONAL_RETRY_BACKOFF_MS
        return settings


#: The least time between two coordinator lookups after a lost connection (the broker is
#: likely restarting: the 20 ms retry backoff would spin).
LOOKUP_RETRY_SECONDS = 0.1


def retry_lost_coordinator_lookups() -> None:
    """Make a lost connection during a transaction coordinator lookup a retry, not a failure.

    aiokafka's `Sender._find_coordinator` (aiokafka/producer/sender.py) retries a lookup the
    broker answers with "not available", but turns a connection closed mid-request (a broker
    shutting down, as in the broker_restart drill) into a plain KafkaError: the sender routine
    then dies ("Unexpected error during batch delivery"), the transaction's commit fails and the
    worker exits. Here such a lookup is asked again until the broker answers, as aiokafka does
    for its other transactional requests. Process-wide (it patches aiokafka's class); idempotent.
    """
    if getattr(Sender._find_coordinator, "retries_lost_connections", False):  # noqa: SLF001
        return
    find = Sender._find_coordinator  # noqa: SLF001, private: aiokafka's

    async def find_coordinator(self: Any, coordinator_type: Any, coordinator_key: str) -> int:
        while True:
            try:
                node_id: int = await find(self, coordinator_type, coordinator_key)
                return node_id
            except KafkaError as exc:
                if not isinstance(exc.__cause__, KafkaConnectionError):
                    raise
                log.warning("transaction coordinator lookup lost its connection (%s); "
                            "asking again", exc.__cause__)  # fmt: skip
                # self is aiokafka's Sender: its retry backoff, in seconds.
                await asyncio.sleep(max(float(self._retry_backoff), LOOKUP_RETRY_SECONDS))

    find_coordinator.retries_lost_connections = True  # type: ignore[attr-defined]
    Sender._find_coordinator = find_coordinator  # noqa: SLF001


def transactional_id_for(app: Any, source: TP) -> str:
    """The transactional id of the producer that takes what a source partition's batches send.

    Faust's own naming (`TransactionManager._tps_to_transactional_ids`): app id, topic group
    of the source topic, partition.
    """
    group = app.assignor.group_for_topic(source.topic)
    return f"{app.conf.id}-{group}-{source.partition}"


class SourcePartitionTransactionManager(TransactionManager):
    """Faust's transaction manager; the consumer's commit is the app's checkpoint's."""

    def __init__(self, transport: Any, *, consumer: Any, producer: Any, **kwargs: Any) -> None:
        super().__init__(transport, consumer=consumer, producer=producer, **kwargs)
        # Faust's timer, its wait_empty and its commit_every all call consumer.commit().
        app: Any = self.app  # the StreamApp, which holds the checkpoint
        consumer.commit = app.checkpoint.commit

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        """Keep exactly one live producer per actively assigned partition.

        Faust (`TransactionManager.on_rebalance`, faust/transport/consumer.py) stops the
        producers of the partitions it computes as revoked and (re)begins the ones of all
        assigned partitions, swallowing every error of `begin_transaction`. A producer of a
        partition that went to another worker and came back was fenced by that worker
        meanwhile; Faust keeps using it and every send fails. Here every producer whose
        partition is not actively assigned now is stopped, and kept ones that are not usable
        (fenced, or in an error state) are replaced by new ones.
        """
        producer: Any = self.producer
        wanted = self._tps_to_transactional_ids(assigned)
        existing = set(producer._transaction_producers)  # noqa: SLF001, private: Faust's producers by id
        log.info(
            "rebalance: %d assigned, %d revoked; producers kept %d, stopped %d, new %d",
            len(assigned), len(revoked), len(existing & wanted), len(existing - wanted),
            len(wanted - existing),
        )  # fmt: skip
        for tid in sorted(existing - wanted):
            await producer.stop_transaction(tid)
        for tid in sorted(wanted):
            current = producer._transaction_producers.get(tid)  # noqa: SLF001, private
            state = _state(current)
            if state == "IN_TRANSACTION":
                continue  # nothing was committed at the revocation: the transaction goes on
            if current is not None and state != "READY":
                log.info("replacing transactional producer %s (%s)", tid, state)
                await producer.stop_transaction(tid)
            # Creates (and initializes, fencing any other holder of the id) when missing.
            await producer.begin_transaction(tid)


def _state(transaction_producer: Any) -> str | None:
    """The state of an aiokafka transactional producer's transaction (None: no producer)."""
    if transaction_producer is None:
        return None
    state = getattr(transaction_producer._txn_manager, "state", None)  # noqa: SLF001, private: aiokafka's
    return None if state is None else str(state.name)
