"""Settings: read once from the environment into one typed object."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from stream_app.kafka_security import (
    MASK,
    SECURITY_ENV_DEFAULTS,
    KafkaSecurity,
    Secret,
    SecurityError,
)


class ProcessingGuarantee(StrEnum):
    """How the worker commits its work (see the README's "Delivery guarantees")."""

    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class LogFormat(StrEnum):
    """How the worker writes its log lines."""

    TEXT = "text"
    JSON = "json"


#: Bounds of STREAM_APP_MAX_SESSION_BYTES: room for a session with a cart, and a record that
#: still fits the worker's 8 MiB producer requests with room to spare.
MIN_SESSION_BYTES = 4 * 1024
MAX_SESSION_BYTES = 4 * 1024 * 1024


class OnProcessingError(StrEnum):
    """What the worker does when handling one record raises (a bug, or a record it cannot read)."""

    DEAD_LETTER = "dead_letter"
    STOP = "stop"


class SettingsError(ValueError):
    """An environment variable holds a value the worker cannot use."""


#: Every environment variable the worker reads, with its default (None: no default).
ENV_DEFAULTS: Mapping[str, str] = {
    "STREAM_APP_BROKER": "kafka://localhost:9092",
    "STREAM_APP_ID": "customer-sessions",
    "STREAM_APP_INPUT_TOPIC": "customer-session-events",
    "STREAM_APP_OUTPUT_TOPIC": "customer-sessions",
    "STREAM_APP_TRANSITIONS_TOPIC": "customer-session-transitions",
    "STREAM_APP_DLQ_TOPIC": "customer-session-events-dlq",
    "STREAM_APP_PARTITIONS": "8",
    "STREAM_APP_DATA_DIR": "./data",
    "STREAM_APP_WEB_PORT": "6066",
    "STREAM_APP_PROCESSING_GUARANTEE": ProcessingGuarantee.EXACTLY_ONCE.value,
    # Empty: derived from the host name and the data directory (Settings.group_instance_id).
    "STREAM_APP_INSTANCE_ID": "",
    "STREAM_APP_WEB_HOST": "0.0.0.0",
    "STREAM_APP_HTTP_TOKEN": "",
    "STREAM_APP_HTTP_TOKEN_FILE": "",
    "STREAM_APP_SESSION_TIMEOUT": "60",
    "STREAM_APP_STANDBY_REPLICAS": "1",
    **SECURITY_ENV_DEFAULTS,
    "STREAM_APP_MAX_BATCH": "500",
    # Empty: 100 under exactly_once (outputs wait for the commit), 1000 under at_least_once.
    "STREAM_APP_COMMIT_INTERVAL_MS": "",
    "STREAM_APP_LOG_FORMAT": LogFormat.TEXT.value,
    "STREAM_APP_ON_PROCESSING_ERROR": OnProcessingError.DEAD_LETTER.value,
    "STREAM_APP_MAX_SESSION_BYTES": str(512 * 1024),
    "STREAM_APP_LEAVE_GROUP_ON_STOP": "false",
    # Empty: the number of brokers, at most 3 (Settings.replication_for).
    "STREAM_APP_REPLICATION_FACTOR": "",
    # Empty: the broker's min.insync.replicas.
    "STREAM_APP_MIN_INSYNC_REPLICAS": "",
}

#: Settings that only a SASL broker or an HTTP token needs (blank by default, or the mechanism).
OPTIONAL_ENV: frozenset[str] = frozenset(
    {name for name, value in ENV_DEFAULTS.items() if not value} | {"STREAM_APP_SASL_MECHANISM"}
)

#: Addresses that only this machine can reach.
LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "::1", "localhost"})
#: Variables whose values are secrets: never printed, logged or shown in a repr.
SECRET_ENV: frozenset[str] = frozenset({"STREAM_APP_SASL_PASSWORD", "STREAM_APP_HTTP_TOKEN"})


@dataclass(frozen=True, slots=True)
class Settings:
    """The worker's configuration; built by `Settings.from_env`, never read from env elsewhere."""

    broker: str
    app_id: str
    input_topic: str
    output_topic: str
    transitions_topic: str
    dlq_topic: str
    partitions: int
    data_dir: Path
    web_port: int
    processing_guarantee: ProcessingGuarantee
    #: Static group membership id; None: derived from the host and data directory.
    instance_id: str | None = None
    #: Address the HTTP server binds to.
    web_host: str = "0.0.0.0"
    #: Bearer token required on /sessions/... (None: open).
    http_token: Secret | None = None
    #: The file the token was read from (a mounted secret), when it came from one.
    http_token_file: Path | None = None
    #: Seconds without a heartbeat before the group gives a worker's partitions to others.
    session_timeout: float = 60.0
    #: Workers that keep a warm copy of each table partition besides its owner.
    standby_replicas: int = 1
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    #: The most records of one partition handled as one batch.
    max_batch: int = 500
    #: How often handled records are committed; None: the guarantee's default (commit_interval).
    commit_interval_ms: int | None = None
    #: Log lines as text (Faust's format) or as one JSON object per line.
    log_format: LogFormat = LogFormat.TEXT
    #: A record whose handling raises: dead-lettered as `processing_error`, or the worker stops.
    on_processing_error: OnProcessingError = OnProcessingError.DEAD_LETTER
    #: The largest a session may be, stored (msgpack) and as a snapshot (JSON), in bytes.
    max_session_bytes: int = 512 * 1024
    #: Leave the consumer group after a clean stop (scale-down), instead of keeping the static
    #: membership for a restart under the same instance id (rolling upgrade: no rebalance).
    leave_group_on_stop: bool = False
    #: Replication factor of the topics the worker creates; None: the brokers, at most 3.
    replication_factor: int | None = None
    #: min.insync.replicas of the topics the worker creates; None: the broker's default.
    min_insync_replicas: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every STREAM_APP_* variable once, applying the documented defaults."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            value = env.get(name, "").strip()
            return value or ENV_DEFAULTS[name]

        interval = get("STREAM_APP_COMMIT_INTERVAL_MS")
        guarantee = get("STREAM_APP_PROCESSING_GUARANTEE")
        try:
            processing_guarantee = ProcessingGuarantee(guarantee)
        except ValueError:
            allowed = ", ".join(g.value for g in ProcessingGuarantee)
            raise SettingsError(
                f"STREAM_APP_PROCESSING_GUARANTEE={guarantee!r}: expected one of {allowed}"
            ) from None
        try:
            security = KafkaSecurity.from_env(get)
        except SecurityError as exc:
            raise SettingsError(str(exc)) from None
        token = get("STREAM_APP_HTTP_TOKEN")
        token_file = get("STREAM_APP_HTTP_TOKEN_FILE")
        if token and token_file:
            raise SettingsError("set STREAM_APP_HTTP_TOKEN or STREAM_APP_HTTP_TOKEN_FILE, not both")
        if token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"STREAM_APP_HTTP_TOKEN_FILE={token_file!r}: cannot read it ({exc.strerror})"
                ) from None
            if not token:
                raise SettingsError(f"STREAM_APP_HTTP_TOKEN_FILE={token_file!r} is empty")
        log_format = get("STREAM_APP_LOG_FORMAT")
        if log_format not in set(LogFormat):
            allowed = ", ".join(f.value for f in LogFormat)
            raise SettingsError(f"STREAM_APP_LOG_FORMAT={log_format!r}: expected one of {allowed}")
        on_error = get("STREAM_APP_ON_PROCESSING_ERROR")
        if on_error not in set(OnProcessingError):
            allowed = ", ".join(o.value for o in OnProcessingError)
            raise SettingsError(
                f"STREAM_APP_ON_PROCESSING_ERROR={on_error!r}: expected one of {allowed}"
            )
        return cls(
            broker=_broker_url(get("STREAM_APP_BROKER")),
            app_id=get("STREAM_APP_ID"),
            input_topic=get("STREAM_APP_INPUT_TOPIC"),
            output_topic=get("STREAM_APP_OUTPUT_TOPIC"),
            transitions_topic=get("STREAM_APP_TRANSITIONS_TOPIC"),
            dlq_topic=get("STREAM_APP_DLQ_TOPIC"),
            partitions=_positive_int("STREAM_APP_PARTITIONS", get("STREAM_APP_PARTITIONS")),
            data_dir=Path(get("STREAM_APP_DATA_DIR")),
            web_port=_positive_int("STREAM_APP_WEB_PORT", get("STREAM_APP_WEB_PORT")),
            processing_guarantee=processing_guarantee,
            instance_id=get("STREAM_APP_INSTANCE_ID") or None,
            web_host=get("STREAM_APP_WEB_HOST"),
            http_token=Secret(token) if token else None,
            http_token_file=Path(token_file) if token_file else None,
            session_timeout=_positive_float(
                "STREAM_APP_SESSION_TIMEOUT", get("STREAM_APP_SESSION_TIMEOUT")
            ),
            standby_replicas=_count(
                "STREAM_APP_STANDBY_REPLICAS", get("STREAM_APP_STANDBY_REPLICAS")
            ),
            security=security,
            max_batch=_positive_int("STREAM_APP_MAX_BATCH", get("STREAM_APP_MAX_BATCH")),
            commit_interval_ms=(
                _positive_int("STREAM_APP_COMMIT_INTERVAL_MS", interval) if interval else None
            ),
            log_format=LogFormat(log_format),
            on_processing_error=OnProcessingError(on_error),
            max_session_bytes=_bytes_between(
                "STREAM_APP_MAX_SESSION_BYTES",
                get("STREAM_APP_MAX_SESSION_BYTES"),
                MIN_SESSION_BYTES,
                MAX_SESSION_BYTES,
            ),
            leave_group_on_stop=_boolean(
                "STREAM_APP_LEAVE_GROUP_ON_STOP", get("STREAM_APP_LEAVE_GROUP_ON_STOP")
            ),
            replication_factor=_optional_positive_int(
                "STREAM_APP_REPLICATION_FACTOR", get("STREAM_APP_REPLICATION_FACTOR")
            ),
            min_insync_replicas=_optional_positive_int(
                "STREAM_APP_MIN_INSYNC_REPLICAS", get("STREAM_APP_MIN_INSYNC_REPLICAS")
            ),
        )

    def to_env(self) -> dict[str, str]:
        """The STREAM_APP_* variables that `from_env` reads back into these settings."""
        return {
            "STREAM_APP_BROKER": self.broker,
            "STREAM_APP_ID": self.app_id,
            "STREAM_APP_INPUT_TOPIC": self.input_topic,
            "STREAM_APP_OUTPUT_TOPIC": self.output_topic,
            "STREAM_APP_TRANSITIONS_TOPIC": self.transitions_topic,
            "STREAM_APP_DLQ_TOPIC": self.dlq_topic,
            "STREAM_APP_PARTITIONS": str(self.partitions),
            "STREAM_APP_DATA_DIR": str(self.data_dir),
            "STREAM_APP_WEB_PORT": str(self.web_port),
            "STREAM_APP_PROCESSING_GUARANTEE": self.processing_guarantee.value,
            "STREAM_APP_INSTANCE_ID": self.instance_id or "",
            "STREAM_APP_WEB_HOST": self.web_host,
            "STREAM_APP_HTTP_TOKEN": (
                ""
                if self.http_token is None or self.http_token_file is not None
                else self.http_token.reveal()
            ),
            "STREAM_APP_HTTP_TOKEN_FILE": (
                "" if self.http_token_file is None else str(self.http_token_file)
            ),
            "STREAM_APP_SESSION_TIMEOUT": f"{self.session_timeout:g}",
            "STREAM_APP_STANDBY_REPLICAS": str(self.standby_replicas),
            **self.security.to_env(),
            "STREAM_APP_MAX_BATCH": str(self.max_batch),
            "STREAM_APP_COMMIT_INTERVAL_MS": (
                "" if self.commit_interval_ms is None else str(self.commit_interval_ms)
            ),
            "STREAM_APP_LOG_FORMAT": self.log_format.value,
            "STREAM_APP_ON_PROCESSING_ERROR": self.on_processing_error.value,
            "STREAM_APP_MAX_SESSION_BYTES": str(self.max_session_bytes),
            "STREAM_APP_LEAVE_GROUP_ON_STOP": str(self.leave_group_on_stop).lower(),
            "STREAM_APP_REPLICATION_FACTOR": _text(self.replication_factor),
            "STREAM_APP_MIN_INSYNC_REPLICAS": _text(self.min_insync_replicas),
        }

    def describe(self) -> dict[str, str]:
        """The effective settings as variables, secrets masked: what `stream-app config` prints.

        Values derived when a variable is blank (the instance id, the commit interval) are
        shown as the worker uses them.
        """
        effective = {
            **self.to_env(),
            "STREAM_APP_INSTANCE_ID": self.group_instance_id,
            "STREAM_APP_COMMIT_INTERVAL_MS": str(round(self.commit_interval * 1000)),
        }
        return {
            name: MASK if name in SECRET_ENV and value else value
            for name, value in effective.items()
        }

    def replication_for(self, brokers: int) -> int:
        """Replication factor of the topics the worker creates on a cluster of `brokers`."""
        if self.replication_factor is not None:
            return self.replication_factor
        return min(3, max(1, brokers))

    @property
    def topic_configs(self) -> dict[str, str]:
        """Configs every topic the worker creates gets, besides its own."""
        if self.min_insync_replicas is None:
            return {}
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    @property
    def http_exposed_without_token(self) -> bool:
        """Whether GET /sessions/... answers anyone who reaches a non-loopback address."""
        return self.http_token is None and self.web_host not in LOOPBACK_HOSTS

    @property
    def commit_interval(self) -> float:
        """Seconds between commits.

        Under exactly_once outputs become visible only when their transaction commits, so the
        default is short (100 ms, as Kafka Streams); under at_least_once they are visible at
        once and a commit only bounds what a crash makes the worker process again (1 s).
        """
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms / 1000.0
        return 0.1 if self.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE else 1.0

    @property
    def group_instance_id(self) -> str:
        """The worker's id in the consumer group, the same each time it restarts.

        With it, a restarted worker takes its partitions back at once instead of waiting for
        the group to time its previous incarnation out. Unless set, it is the host name plus a
        digest of the data directory's absolute path: stable across restarts of one worker,
        and distinct between live workers, which never share a data directory (it is locked).
        """
        if self.instance_id:
            return self.instance_id
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:10]
        return f"{socket.gethostname()}-{digest}"

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker list as host:port strings, for plain Kafka clients."""
        return [url.split("://", 1)[-1] for url in self.broker.split(",")]

    @property
    def bootstrap(self) -> str:
        """The broker list as one comma-separated host:port string (aiokafka's form)."""
        return ",".join(self.bootstrap_servers)

    @property
    def claims_topic(self) -> str:
        """Internal topic: profile claims keyed by (applicationId, profileId)."""
        return f"{self.app_id}-profile-claims"

    @property
    def verdicts_topic(self) -> str:
        """Internal topic: firstSession verdicts routed back to the session's partition."""
        return f"{self.app_id}-profile-verdicts"

    @property
    def rekeyed_topic(self) -> str:
        """Internal topic: events that arrived without a key, re-keyed by integrationId."""
        return f"{self.app_id}-rekeyed-events"


def _broker_url(raw: str) -> str:
    # Faust wants a scheme on every entry; users often write plain host:port lists.
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    if not entries:
        raise SettingsError("STREAM_APP_BROKER is empty")
    return ",".join(entry if "://" in entry else f"kafka://{entry}" for entry in entries)


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a positive integer") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r}: expected a positive integer")
    return value


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a positive number of seconds") from None
    if not value > 0:
        raise SettingsError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def _count(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer >= 0") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r}: expected an integer >= 0")
    return value


def _bytes_between(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r}: expected a number of bytes from {low} to {high}")
    return value


def _boolean(name: str, raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{name}={raw!r}: expected true or false")
    return value == "true"


def _optional_positive_int(name: str, raw: str) -> int | None:
    return None if not raw else _positive_int(name, raw)


def _text(value: int | None) -> str:
    return "" if value is None else str(value)
