"""The `stream-app` console command."""

from __future__ import annotations

import asyncio
import importlib
import sys

from aiokafka.errors import KafkaError

from stream_app.settings import Settings, SettingsError
from stream_app.worker.topics import TopicLayoutError, ensure_topics

USAGE = """usage: stream-app worker [faust worker options, e.g. -l info --web-port 6067]
       stream-app produce FILE|-                send events to the input topic
       stream-app dlq summary|tail|replay ...   inspect and re-drive dead letters
       stream-app schema [--asyncapi]           JSON Schemas of the records, AsyncAPI of the topics

`worker` starts a customer-session worker; Faust's worker options are passed through.
Configuration comes from STREAM_APP_* environment variables (see README.md).
`stream-app COMMAND --help` explains each command.
"""

#: Commands beside `worker`, each a module with `main(argv) -> exit status`.
TOOLS = {
    "produce": "stream_app.tools.produce",
    "dlq": "stream_app.tools.dlq",
    "schema": "stream_app.tools.schema",
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `stream-app` console script."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE, end="")
        return
    if args[0] in TOOLS:
        sys.exit(run_tool(args[0], args[1:]))
    if args[0] != "worker":
        sys.exit(f"stream-app: unknown command {args[0]!r}\n\n{USAGE}")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"stream-app: {exc}")
    run_worker(settings, args)


def run_tool(name: str, args: list[str]) -> int:
    """Run one of the operator commands; a Kafka error ends it with a message and status 2."""
    tool = importlib.import_module(TOOLS[name])
    try:
        status: int = tool.main(args)
    except KafkaError as exc:
        print(f"stream-app {name}: Kafka error: {exc!r}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


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
