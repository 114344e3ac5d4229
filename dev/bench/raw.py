"""The limit: a raw aiokafka loop with no Faust and no state, run as its own process.

    python -m dev.bench.raw --bootstrap HOST:PORT --input T --output T --group G

It consumes the input topic in a consumer group, decodes every record with the project's
msgspec event decoder (the same validation the worker does), and produces one record per input
record: the decoded event re-encoded as JSON, or a small error record for a rejected one, with
the input's key. Sends are not awaited one by one: a fetched batch is sent, the acks awaited, and
offsets are committed every 0.5 s (the worker commits every 100 ms under exactly_once and every
1 s under at_least_once by default). This is what
any Kafka consumer-producer in Python pays per record, so the worker's figures are ratios to it.

Prints `ready` once it has its partitions, and one JSON line with its counters on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from dev.harness.kafka import client_security
from stream_app.domain import Rejected, decode_event, encode_json

COMMIT_INTERVAL = 0.5


async def run(bootstrap: str, input_topic: str, output_topic: str, group: str) -> dict[str, int]:
    """Consume, decode and produce until SIGTERM; returns the counters."""
    consumer = AIOKafkaConsumer(
        input_topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        **client_security(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        **client_security(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await producer.start()
    await consumer.start()
    counters = {"consumed": 0, "rejected": 0, "produced": 0}
    pending: dict[TopicPartition, int] = {}
    last_commit = time.monotonic()
    announced = False
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=2000)
            if not announced and consumer.assignment():
                print("ready", flush=True)
                announced = True
            futures = []
            for tp, messages in batch.items():
                for message in messages:
                    raw = message.value if message.value is not None else b""
                    decoded = decode_event(raw)
                    if isinstance(decoded, Rejected):
                        counters["rejected"] += 1
                        value = encode_json({"error": decoded.code})
                    else:
                        value = encode_json(decoded)
                    futures.append(await producer.send(output_topic, value, key=message.key))
                counters["consumed"] += len(messages)
                pending[tp] = messages[-1].offset + 1
            if futures:
                await asyncio.gather(*futures)
                counters["produced"] += len(futures)
            now = time.monotonic()
            if pending and (now - last_commit >= COMMIT_INTERVAL or not batch):
                await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in pending.items()})
                pending.clear()
                last_commit = now
        if pending:
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in pending.items()})
    finally:
        await consumer.stop()
        await producer.stop()
    return counters


def main(argv: Sequence[str] | None = None) -> int:
    """Run the raw loop until SIGTERM and print its counters as JSON."""
    parser = argparse.ArgumentParser(prog="python -m dev.bench.raw", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    counters = asyncio.run(run(args.bootstrap, args.input, args.output, args.group))
    sys.stdout.write(msgspec.json.encode(counters).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
