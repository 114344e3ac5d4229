"""How soon a bare aiokafka consumer sees a record: the floor under the worker's fetch stage.

    python -m dev.bench.consume [--rate 2000] [--seconds 15] [--fetch-max-wait-ms 1500 5]

A producer (linger 0, idempotent) and a consumer (its own group, 8 partitions) in one process:
each record carries its send time, and the consumer notes when `getmany` returned it. Prints
p50/p95/p99 per `fetch_max_wait_ms` (Faust's consumer uses 1,500). No Faust, no state, no
outputs: what aiokafka itself costs between a send and a consumer holding the record.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dev.harness.kafka import bootstrap_from_env, client_security, create_topic


async def measure(bootstrap: str, fetch_max_wait_ms: int, rate: float, seconds: float) -> str:
    topic = f"bench-consume-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, 8)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, enable_idempotence=True, **client_security()
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        **client_security(),
    )
    await producer.start()
    await consumer.start()
    seen: list[float] = []
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            seen.extend(now - float(m.value or b"0") for ms in batch.values() for m in ms)

    try:
        await asyncio.sleep(3)  # the group is joined
        task = asyncio.create_task(consume())
        started, sent = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                await producer.send(topic, str(time.time()).encode(), key=str(sent).encode())
                sent += 1
            await asyncio.sleep(0.001)
        await asyncio.sleep(1)
        stop.set()
        await task
    finally:
        await producer.stop()
        await consumer.stop()
    seen.sort()
    n = len(seen)
    p50, p95, p99 = (1000 * seen[min(n - 1, int(n * q))] for q in (0.5, 0.95, 0.99))
    return (
        f"fetch_max_wait_ms={fetch_max_wait_ms}: {n:,}/{sent:,} records,"
        f" p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap", default=None, help="host:port (default: $STREAM_APP_BROKER, as the worker)"
    )
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--fetch-max-wait-ms", type=int, nargs="+", default=[1500, 5])
    args = parser.parse_args()
    bootstrap = args.bootstrap or bootstrap_from_env()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for wait in args.fetch_max_wait_ms:
        print(asyncio.run(measure(bootstrap, wait, args.rate, args.seconds)), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
