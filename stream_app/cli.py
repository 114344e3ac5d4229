"""The `stream-app` console command: `worker`, `config`, the operator tools, `--version`.

Each subcommand is a function registered in `COMMANDS` with `@command`; `main` dispatches. The
operator tools (check, produce, dlq, stats, schema) are modules of `stream_app.tools` with
`main(argv)`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from stream_app import __version__
from stream_app.settings import LogFormat, Settings, settings_table
from stream_app.tools import client_errors, load_settings, redact

USAGE = """usage: stream-app <command> [options]

Configuration comes only from STREAM_APP_* environment variables (see README.md).

commands:
{commands}

  stream-app --version      print the version of stream-app and of what it runs on
  stream-app worker --help  Faust's worker options (-l info, --web-port, --web-host, ...)
  stream-app COMMAND --help explains each of the other commands
"""


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: one line of help and the function that runs it with its arguments."""

    summary: str
    run: Callable[[list[str]], None]


COMMANDS: dict[str, Command] = {}


def command(name: str, summary: str) -> Callable[[Callable[[list[str]], None]], Command]:
    """Register a subcommand of `stream-app`."""

    def register(run: Callable[[list[str]], None]) -> Command:
        COMMANDS[name] = Command(summary, run)
        return COMMANDS[name]

    return register


def usage() -> str:
    """The top-level help text, listing every registered subcommand."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def version() -> str:
    """stream-app's version and the versions of the libraries whose behaviour it overrides."""
    parts = []
    for dist in ("faust-streaming", "aiokafka", "mode-streaming"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} missing")
    return f"stream-app {__version__} ({', '.join(parts)})"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `stream-app` console script."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage(), end="")
        return
    if args[0] in {"-V", "--version"}:
        print(version())
        return
    found = COMMANDS.get(args[0])
    if found is None:
        sys.exit(f"stream-app: unknown command {args[0]!r}\n\n{usage()}")
    found.run(args[1:])


# ------------------------------------------------------------------------------------ worker


@command("worker", "run a worker: create missing topics, then consume (Faust's worker options)")
def worker_command(args: list[str]) -> None:
    """Run a worker; with --help, print Faust's worker options without touching Kafka."""
    # Only --help: Faust's worker takes -h as --web-host.
    if "--help" in args:
        # Faust prints its options from an app object; building one contacts no broker.
        run_faust(Settings.from_env({}), None, args)
        return
    settings = load_settings()
    run_worker(settings, args)


def ignore_faust_environment() -> None:
    """Drop Faust's own FAUST_* / F_* variables: only STREAM_APP_* configure the worker."""
    # Faust reads these when it is imported (faust/types/_env.py), before any app exists.
    for name in [name for name in os.environ if name.startswith(("FAUST_", "F_"))]:
        del os.environ[name]


def run_worker(settings: Settings, args: list[str]) -> None:
    """Create missing topics, build the app and hand control to Faust's worker command."""
    from aiokafka.errors import KafkaError

    # Before Faust is imported: it reads its own variables at import time.
    ignore_faust_environment()
    from stream_app.worker.overrides import UnsupportedFaustVersion, check_faust_version
    from stream_app.worker.overrides.local_state import DataDirInUse, lock_data_dir
    from stream_app.worker.topics import TopicLayoutError, ensure_topics

    try:
        check_faust_version()
        lock_data_dir(settings.data_dir)
    except (UnsupportedFaustVersion, DataDirInUse) as exc:
        sys.exit(f"stream-app: {exc}")

    with client_errors() as errors:
        try:
            layout = asyncio.run(ensure_topics(settings))
        except KafkaError as exc:
            cause = f"\n  cause: {errors.cause()}" if errors.cause() else ""
            message = f"stream-app: cannot prepare topics on {settings.broker}: {exc!r}{cause}"
            sys.exit(redact(message, settings))
        except TopicLayoutError as exc:
            sys.exit(f"stream-app: {exc}")
    run_faust(settings, layout.partitions, args, replication=layout.replication)


def run_faust(
    settings: Settings, partitions: int | None, args: list[str], replication: int = 1
) -> None:
    """Build the app (for `partitions`, or the configured count) and run Faust's worker."""
    ignore_faust_environment()
    import uvloop

    # Before the app creates its event loops (its own and the consumer thread's).
    uvloop.install()
    # Imported here so that the other commands do not pay for importing Faust.
    from stream_app.worker.app import create_worker

    worker = create_worker(
        settings, settings.partitions if partitions is None else partitions, replication
    )
    # Faust's --quiet: no start-up banner on stdout between the JSON lines.
    quiet = ["--quiet"] if settings.log_format is LogFormat.JSON else []
    sys.argv = ["stream-app", *quiet, "worker", *args]
    try:
        worker.app.main()
    finally:
        worker.after_stop()


# ------------------------------------------------------------------------------------ config


@command("config", "print the effective settings, secrets masked")
def config_command(args: list[str]) -> None:
    """Print every STREAM_APP_* setting as the worker would use it."""
    if _asked_for_help(args, "config [--markdown]", "Print every STREAM_APP_* setting with the "
                       "value the worker would use (derived ones filled in), secrets masked.\n"
                       "--markdown: the table of every setting, its default and meaning "
                       "(the README's)."):  # fmt: skip
        return
    if args == ["--markdown"]:
        print(settings_table(), end="")
        return
    if args:
        sys.exit(f"stream-app config: unknown arguments {args} (try --help)")
    for name, value in load_settings().describe().items():
        print(f"{name}={value}")


def _asked_for_help(args: list[str], name: str, text: str) -> bool:
    """Print a command's help for -h/--help (exit status 0)."""
    if args in (["-h"], ["--help"]):
        print(f"usage: stream-app {name}\n\n{text}")
        return True
    return False


# ------------------------------------------------------------------------------ operator tools


def run_tool(module: str, name: str, args: list[str]) -> int:
    """Run an operator command (a module with `main(argv) -> exit status`); a Kafka error ends
    it with a message and status 2."""
    from aiokafka.errors import KafkaError

    tool = importlib.import_module(module)
    try:
        status: int = tool.main(args)
    except KafkaError as exc:
        print(f"stream-app {name}: Kafka error: {exc!r}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


@command("check", "connect to Kafka with the configured security and report what is there")
def check_command(args: list[str]) -> None:
    """Report brokers, topics and partitions, and whether transactions work (tools/check.py)."""
    sys.exit(run_tool("stream_app.tools.check", "check", args))


@command("produce", "send events (FILE or -) to the input topic")
def produce_command(args: list[str]) -> None:
    """Send events to the input topic (tools/produce.py)."""
    sys.exit(run_tool("stream_app.tools.produce", "produce", args))


@command("dlq", "summary|tail|replay: inspect and re-drive dead letters")
def dlq_command(args: list[str]) -> None:
    """Inspect and re-drive dead letters (tools/dlq.py)."""
    sys.exit(run_tool("stream_app.tools.dlq", "dlq", args))


@command("stats", "APP [--from T] [--to T]: an application's statistics windows, from a worker")
def stats_command(args: list[str]) -> None:
    """Print an application's windowed statistics, asked of a worker (tools/stats.py)."""
    sys.exit(run_tool("stream_app.tools.stats", "stats", args))


@command("schema", "JSON Schemas of the records, AsyncAPI of the topics")
def schema_command(args: list[str]) -> None:
    """Print the records' JSON Schemas or the topics' AsyncAPI document (tools/schema.py)."""
    sys.exit(run_tool("stream_app.tools.schema", "schema", args))
