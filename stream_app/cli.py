"""The `stream-app` console command."""

from __future__ import annotations

import asyncio
import sys

from aiokafka.errors import KafkaError

from stream_app.settings import Settings, SettingsError
from stream_app.worker.topics import TopicLayoutError, ensure_topics

USAGE = """usage: stream-app worker [faust worker options, e.g. -l info --web-port 6067]

Starts a customer-session worker. Configuration comes from STREAM_APP_* environment
variables (see README.md); Faust's worker options are passed through.
"""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `stream-app` console script."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE, end="")
        return
    if args[0] != "worker":
        sys.exit(f"stream-app: unknown command {args[0]!r}\n\n{USAGE}")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"stream-app: {exc}")
    run_worker(settings, args)


def run_worker(settings: Settings, args: list[str]) -> None:
    """Create missing topics, build the app and hand control to Faust's worker command."""
    # Imported here so that `stream-app --help` does not pay for importing Faust.
    from stream_app.worker.app import create_worker
    from stream_app.worker.local_state import DataDirInUse, lock_data_dir
    from stream_app.worker.membership import leave_group
    from stream_app.worker.transactions import Checkpoint

    try:
        lock_data_dir(settings.data_dir)
    except DataDirInUse as exc:
        sys.exit(f"stream-app: {exc}")

    try:
        partitions = asyncio.run(ensure_topics(settings))
    except KafkaError as exc:
        sys.exit(f"stream-app: cannot prepare topics on {settings.broker}: {exc!r}")
    except TopicLayoutError as exc:
        sys.exit(f"stream-app: {exc}")
    worker = create_worker(settings, partitions)
    stopped_cleanly: list[bool] = []
    Checkpoint.of(worker.app).on_clean_stop.append(lambda: stopped_cleanly.append(True))
    sys.argv = ["stream-app", *args]
    try:
        worker.app.main()
    finally:
        if stopped_cleanly:
            # A static member never leaves by itself (membership.py).
            asyncio.run(leave_group(settings))
