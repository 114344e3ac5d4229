"""Every private member of Faust, mode and aiokafka that the overrides use still exists.

The overrides (stream_app/worker/overrides) reach into their dependencies' internals; those
are pinned (pyproject.toml) and checked at start, but an upgrade of a pin must fail here, in
seconds, naming what went away, rather than in a ten-minute drill. The list the test reads is
the one documented in stream_app/worker/overrides/__init__.py.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream_app.settings import Settings
from stream_app.worker.app import create_worker
from stream_app.worker.overrides import AIOKAFKA_VERSION, FOREIGN_PRIVATE_MEMBERS

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ROOT / "stream_app" / "worker" / "overrides"


def _missing(tmp_path: Path) -> tuple[set[str], list[str]]:
    """The owners built, and `owner.name` of every listed member a live owner lacks."""

    async def check() -> tuple[set[str], list[str]]:
        settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)})
        worker = create_worker(settings, partitions=2)
        app: Any = worker.app
        consumer = app.consumer
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", transactional_id="check")
        client_consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        owners = {
            "faust App": app,
            "faust Consumer": consumer,
            "faust ConsumerThread": consumer._thread,
            "faust Producer": app.producer,
            "faust TransactionManager": consumer.transactions,
            "faust PartitionAssignor": app.assignor,
            "faust RocksDB Store": app.tables["sessions"].data,
            "faust TableManager": app.tables,
            "faust Recovery": app.tables.recovery,
            "mode FlowControlQueue": app.tables.changelog_queue,
            "aiokafka AIOKafkaProducer": producer,
            "aiokafka AIOKafkaClient": producer.client,
            "aiokafka Sender": producer._sender,
            "aiokafka AIOKafkaConsumer": client_consumer,
        }
        try:
            return set(owners), [
                f"{owner}.{name}"
                for owner, names in FOREIGN_PRIVATE_MEMBERS.items()
                for name in names
                if not _has(owners[owner], name)
            ]
        finally:
            consumer._thread.thread_loop.close()
            await producer.stop()
            await client_consumer.stop()

    return asyncio.run(check())


def _has(owner: Any, name: str) -> bool:
    """An attribute, or one the owner's class declares and sets later (e.g. at a rebalance)."""
    declared = (getattr(cls, "__annotations__", {}) for cls in type(owner).__mro__)
    return hasattr(owner, name) or any(name in annotations for annotations in declared)


def test_every_private_member_the_overrides_use_exists(tmp_path: Path) -> None:
    owners, missing = _missing(tmp_path)
    assert set(FOREIGN_PRIVATE_MEMBERS) == owners
    assert missing == [], f"gone from the installed versions: {missing}"


def test_every_marked_private_access_is_listed() -> None:
    # Each access to another object's private member is marked `# private` (or with ruff's
    # SLF001 suppression, which ruff enforces) on its line; the names there must be listed.
    listed = {name for names in FOREIGN_PRIVATE_MEMBERS.values() for name in names}
    used: set[str] = set()
    for path in OVERRIDES.glob("*.py"):
        for line in path.read_text().splitlines():
            if "# private" in line or "SLF001" in line:
                code = line.split("#", 1)[0]
                used.update(re.findall(r"\w\.(_[a-z][a-z_]*)", code))
    assert used, "no marked line found: the marks were lost"
    assert used - listed == set()


@pytest.mark.parametrize("dist", ["aiokafka"])
def test_aiokafka_is_the_pinned_version(dist: str) -> None:
    from importlib import metadata

    assert metadata.version(dist) == AIOKAFKA_VERSION
    pinned = (ROOT / "pyproject.toml").read_text()
    assert f'"aiokafka=={AIOKAFKA_VERSION}"' in pinned
