"""Faust's transaction manager, with the worker's commit and live producers after rebalances.

Faust creates one `TransactionManager` per consumer (under either guarantee). This one

- makes the consumer's commit the checkpoint's (`Consumer.commit` is what Faust's timer, its
  `wait_empty` and its `commit_every` call): checkpoint.py says what a commit does;
- keeps exactly one usable transactional producer per actively assigned source partition
  across rebalances (`on_rebalance`);
- has its transactional producers retry a refused request after 20 ms, not 100
  (`TransactionalProducer`).

Why Faust's own machinery is replaced here: docs/design.md, "Where the worker replaces Faust's
machinery".
"""

from __future__ import annotations

import logging
from typing import Any

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
