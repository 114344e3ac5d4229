"""The `stream-app` console command: `worker`, `config`, `check`, `--version`.

Each subcommand is a function registered in `COMMANDS` with `@command`; `main` dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata

from stream_app import __version__
from stream_app.settings import LogFormat, Settings, SettingsError

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


def load_settings() -> Settings:
    """Settings from the environment, or exit with the message of the first bad one."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"stream-app: {exc}")


def redact(text: str, settings: Settings) -> str:
    """`text` with every configured secret replaced by the mask."""
    secrets = [settings.http_token, settings.security.sasl_password]
    for secret in secrets:
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), str(secret))
    return text


# ------------------------------------------------------------------------------ operator tools

#: Commands that are modules with `main(argv) -> exit status`: name -> (module, summary).
TOOLS = {
    "produce": ("stream_app.tools.produce", "send events (FILE or -) to the input topic"),
    "dlq": ("stream_app.tools.dlq", "summary|tail|replay: inspect and re-drive dead letters"),
    "schema": ("stream_app.tools.schema", "JSON Schemas of the records, AsyncAPI of the topics"),
}


def run_tool(name: str, args: list[str]) -> int:
    """Run one of the operator commands; a Kafka error ends it with a message and status 2."""
    from aiokafka.errors import KafkaError

    tool = importlib.import_module(TOOLS[name][0])
    try:
        status: int = tool.main(args)
    except KafkaError as exc:
        print(f"stream-app {name}: Kafka error: {exc!r}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


def _register_tool(name: str) -> None:
    command(name, TOOLS[name][1])(lambda args: sys.exit(run_tool(name, args)))


class ClientErrors(logging.Handler):
    """Collects what aiokafka logs while it fails: the cause its exceptions leave out."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def cause(self) -> str:
        """The last error aiokafka logged (e.g. SaslAuthenticationFailed), or ''."""
        return self.messages[-1] if self.messages else ""


@contextlib.contextmanager
def client_errors() -> Iterator[ClientErrors]:
    """Collect aiokafka's warnings and errors while the block runs."""
    handler = ClientErrors()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


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
    if _asked_for_help(args, "config", "Print every STREAM_APP_* setting with the value the "
                       "worker would use (derived ones filled in), secrets masked."):  # fmt: skip
        return
    if args:
        sys.exit(f"stream-app config: takes no arguments, got {args}")
    for name, value in load_settings().describe().items():
        print(f"{name}={value}")


def _asked_for_help(args: list[str], name: str, text: str) -> bool:
    """Print a command's help for -h/--help (exit status 0)."""
    if args in (["-h"], ["--help"]):
        print(f"usage: stream-app {name}\n\n{text}")
        return True
    return False


# ------------------------------------------------------------------------------------- check

#: Seconds each step of `stream-app check` may take before it is reported as failed.
CHECK_TIMEOUT = 30.0


@command("check", "connect to Kafka with the configured security and report what is there")
def check_command(args: list[str]) -> None:
    """Report brokers, topics and partitions, and whether transactions work; exit 1 on failure."""
    help_text = (
        "Connect to Kafka with the configured security and report the brokers, the worker's "
        "topics and their partitions, and whether transactions work; exit status 1 when the "
        "worker could not run."
    )
    if _asked_for_help(args, "check", help_text):
        return
    if args:
        sys.exit(f"stream-app check: takes no arguments, got {args}")
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
    if not ok:
        sys.exit(1)


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
            settings.claims_topic,
            settings.verdicts_topic,
            settings.rekeyed_topic,
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
        internal = [settings.claims_topic, settings.verdicts_topic, settings.rekeyed_topic]
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


for _tool in TOOLS:
    _register_tool(_tool)
