"""Would one transaction per commit pay? The commit of N per-partition transactions against one.

    python -m dev.bench.transactions [--partitions 8] [--commits 300] [--records 200]

Under exactly_once the worker has one transactional producer per source partition (Faust's
layout) and a commit ends all of them at once: per producer AddOffsetsToTxn, TxnOffsetCommit
and EndTxn, concurrently. One producer per worker (Kafka Streams' exactly_once_v2, KIP-447)
would end one transaction holding every partition's records and offsets. This measures both
commit shapes on the real broker with aiokafka, nothing else running: each round sends
`--records` records per partition (as a batch of input handled per partition would), then
commits, back to back; it reports each commit's wall time (p50/p99) and the process's CPU per
commit. The offsets go to a consumer group with no members (what differs, the group metadata
of TxnOffsetCommit v3, changes who may commit, not the work a commit does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from dev.harness.kafka import bootstrap_from_env, client_security


async def _producers(
    bootstrap: str, count: int, prefix: str, retry_backoff_ms: int
) -> list[AIOKafkaProducer]:
    producers = [
        AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"{prefix}-{n}",
            linger_ms=5,
            retry_backoff_ms=retry_backoff_ms,
            **client_security(),
        )
        for n in range(count)
    ]
    await asyncio.gather(*(producer.start() for producer in producers))
    return producers


async def _round(
    producers: list[AIOKafkaProducer],
    topic: str,
    partitions: int,
    records: int,
    group: str,
    offset: int,
) -> float:
    """One round: every partition's records sent, then the commit; the commit's seconds."""
    value = b"x" * 600
    for producer in producers:
        await producer.begin_transaction()
    for partition in range(partitions):
        producer = producers[partition % len(producers)]
        batch = producer.create_batch()
        for n in range(records):
            batch.append(key=f"k{n}".encode(), value=value, timestamp=None)
        batch.close()
        await producer.send_batch(batch, topic, partition=partition)
    started = time.perf_counter()

    async def commit(index: int, producer: AIOKafkaProducer) -> None:
        owned = range(index, partitions, len(producers))
        offsets = {TopicPartition(topic, p): OffsetAndMetadata(offset, "") for p in owned}
        await producer.send_offsets_to_transaction(offsets, group)
        await producer.commit_transaction()

    await asyncio.gather(*(commit(n, p) for n, p in enumerate(producers)))
    return time.perf_counter() - started


async def measure(
    bootstrap: str, partitions: int, commits: int, records: int, retry_backoff_ms: int
) -> dict[str, object]:
    topic = f"bench-txn-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    results: dict[str, object] = {
        "partitions": partitions,
        "records_per_partition": records,
        "retry_backoff_ms": retry_backoff_ms,
    }
    try:
        for name, count in (("per-partition", partitions), ("one", 1)):
            producers = await _producers(bootstrap, count, f"{topic}-{name}", retry_backoff_ms)
            try:
                for warmup in range(10):
                    await _round(producers, topic, partitions, records, f"{topic}-g", warmup)
                cpu = time.process_time()
                started = time.perf_counter()
                seconds = [
                    await _round(producers, topic, partitions, records, f"{topic}-g", 10 + n)
                    for n in range(commits)
                ]
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu
            finally:
                await asyncio.gather(*(producer.stop() for producer in producers))
            seconds.sort()
            results[name] = {
                "transactions_per_commit": count,
                "commit_p50_ms": round(1000 * seconds[len(seconds) // 2], 2),
                "commit_p99_ms": round(1000 * seconds[int(len(seconds) * 0.99) - 1], 2),
                "cpu_ms_per_round": round(1000 * cpu / commits, 2),
                "wall_ms_per_round": round(1000 * wall / commits, 2),
            }
            print(f"{name:>14}: {results[name]}", flush=True)
    finally:
        await admin.delete_topics([topic])
        await admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap", default=None, help="host:port (default: $STREAM_APP_BROKER, as the worker)"
    )
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--records", type=int, default=200, help="records per partition per round")
    parser.add_argument("--retry-backoff-ms", type=int, default=100, help="aiokafka's default: 100")
    args = parser.parse_args()
    bootstrap = args.bootstrap or bootstrap_from_env()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    result = asyncio.run(
        measure(bootstrap, args.partitions, args.commits, args.records, args.retry_backoff_ms)
    )
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
