"""`stream-app check`: connect to Kafka with the configured security and report what is there.

    stream-app check

Reports the brokers, the worker's topics and their partitions, and whether transactions work;
exit status 1 when the worker could not run.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from stream_app.settings import Settings
from stream_app.tools import client_errors, load_settings, redact

#: Seconds each step of `stream-app check` may take before it is reported as failed.
CHECK_TIMEOUT = 30.0


def main(argv: list[str]) -> int:
    """Run `stream-app check`."""
    if argv in (["-h"], ["--help"]):
        print("usage: stream-app check\n\n" + __doc__.split("\n\n", 2)[2].strip())
        return 0
    if argv:
        print(f"stream-app check: takes no arguments, got {argv}", file=sys.stderr)
        return 2
    settings = load_settings()
    lines: list[str] = []
    try:
        with client_errors() as errors:
            ok = asyncio.run(check_kafka(settings, lines.append))
        if not ok and errors.cause():
            lines.append(f"  cause: {errors.cause()}")
    finally:
        for line in lines:
            print(redact(line, settings), flush=True)
    return 0 if ok else 1


async def check_kafka(settings: Settings, say: Callable[[str], None]) -> bool:
    """Run the checks, reporting each with `say`; True when the worker could run."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    security = settings.security
    who = f", {security.sasl_mechanism.value} user {security.sasl_username!r}"
    say(
        f"broker {settings.bootstrap} over {security.protocol.value}"
        + (who if security.protocol.uses_sasl else "")
    )
    step = "connect"
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-check",
        request_timeout_ms=int(CHECK_TIMEOUT * 1000),
        **security.client_kwargs(),
    )
    try:
        await asyncio.wait_for(admin.start(), CHECK_TIMEOUT)
        step = "describe the cluster"
        cluster = await asyncio.wait_for(admin.describe_cluster(), CHECK_TIMEOUT)
        brokers = ", ".join(f"{b['node_id']}@{b['host']}:{b['port']}" for b in cluster["brokers"])
        say(f"brokers: {brokers} (controller {cluster['controller_id']})")
        step = "list topics"
        existing = set(await asyncio.wait_for(admin.list_topics(), CHECK_TIMEOUT))
        names = [
            settings.input_topic,
            settings.output_topic,
            settings.transitions_topic,
            settings.dlq_topic,
            *([settings.stats_topic] if settings.stats else []),
            *settings.internal_topics,
        ]
        present = [name for name in names if name in existing]
        counts: dict[str, int] = {}
        if present:
            step = "describe topics"
            described = await asyncio.wait_for(admin.describe_topics(present), CHECK_TIMEOUT)
            counts = {topic["topic"]: len(topic["partitions"]) for topic in described}
        say("topics:")
        for name in names:
            found = f"{counts[name]} partitions" if name in counts else "missing (created at start)"
            say(f"  {name}: {found}")
        expected = counts.get(settings.input_topic, settings.partitions)
        internal = settings.internal_topics
        wrong = {name: counts[name] for name in internal if counts.get(name, expected) != expected}
        if wrong:
            say(f"FAILED: internal topics {wrong} must have {expected} partitions like the input")
            return False
    except Exception as exc:
        say(f"FAILED to {step}: {type(exc).__name__}: {exc}")
        return False
    finally:
        await admin.close()

    transactional_id = f"{settings.app_id}-check"
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        transactional_id=transactional_id,
        request_timeout_ms=int(CHECK_TIMEOUT * 1000),
        **security.client_kwargs(),
    )
    try:
        # start() initialises the transactional id with the transaction coordinator.
        await asyncio.wait_for(producer.start(), CHECK_TIMEOUT)
        await asyncio.wait_for(producer.begin_transaction(), CHECK_TIMEOUT)
        await asyncio.wait_for(producer.commit_transaction(), CHECK_TIMEOUT)
        say(f"transactions: ok (transactional id {transactional_id!r})")
    except Exception as exc:
        say(f"transactions: FAILED: {type(exc).__name__}: {exc}")
        return settings.processing_guarantee.value != "exactly_once"
    finally:
        await producer.stop()
    return True
