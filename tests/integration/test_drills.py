"""The failure drills, small: kill -9, state wiped, poison flood (docs/drills.md).

Each runs real `stream-app worker` processes on the broker and checks every output record
against a replay of the input through the domain core (stream_app/drills/verify.py). The full
drills, with the failover and broker-restart ones, are `make drill`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.drills.__main__ import QUICK, WORKER_ENV, render
from stream_app.drills.harness import DrillOptions
from stream_app.drills.scenarios import kill9, poison_flood, state_wiped

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture
def options(kafka_bootstrap: str, tmp_path: Path) -> DrillOptions:
    """Drill options on the test broker, with worker logs under the test's tmp_path."""
    return DrillOptions(
        bootstrap=kafka_bootstrap, root=tmp_path, seed=7, worker_env=dict(WORKER_ENV)
    )


async def test_kill9_loses_and_duplicates_nothing(options: DrillOptions) -> None:
    result = await kill9(options, **QUICK["kill9"])
    assert result.passed, render(result)


async def test_state_restored_from_changelog_after_data_dir_wipe(options: DrillOptions) -> None:
    result = await state_wiped(options, **QUICK["state_wiped"])
    assert result.passed, render(result)


async def test_poison_flood_is_dead_lettered_without_stalling(options: DrillOptions) -> None:
    result = await poison_flood(options, **QUICK["poison_flood"])
    assert result.passed, render(result)
