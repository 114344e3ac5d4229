"""Settings: read once from the environment into one typed object."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from stream_app.domain.retention import Retention
from stream_app.kafka_security import (
    MASK,
    KafkaSecurity,
    SaslMechanism,
    Secret,
    SecurityError,
    SecurityProtocol,
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


Parse = Callable[[str, str], Any]


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable, declared once: `Settings.from_env`, `Settings.to_env`,
    `stream-app config` and the README's settings table are all derived from this."""

    env: str
    #: The `Settings` field it fills ("security": read with the others by KafkaSecurity.from_env).
    attribute: str
    #: The text used when the variable is unset or blank ("": none).
    default: str
    #: (variable name, text) -> value; None for the security variables, read as one group.
    parse: Parse | None
    #: What it does, as the README's table says it.
    meaning: str
    #: The README's "default" column, when the default text alone does not say it.
    default_doc: str = ""
    #: Never printed, logged or shown in a repr.
    secret: bool = False
    #: The value the worker derives when the variable is blank, as `stream-app config` shows it.
    effective: Callable[[Settings], str] | None = None
    #: The parsed value as the variable's text, when `_as_text` does not give it.
    show: Callable[[Any], str] | None = None

    @property
    def documented_default(self) -> str:
        """The README's "default" column."""
        if self.default_doc:
            return self.default_doc
        return f"`{self.default}`" if self.default else "(none)"


def _text(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _secret(name: str, raw: str) -> Secret:
    return Secret(raw)


def _optional(parse: Parse) -> Parse:
    """A setting whose blank value means "not set" (None)."""
    return lambda name, raw: parse(name, raw) if raw else None


def _choice(enum: type[StrEnum]) -> Parse:
    def parse(name: str, raw: str) -> StrEnum:
        try:
            return enum(raw)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise SettingsError(f"{name}={raw!r}: expected one of {allowed}") from None

    return parse


def _broker_url(name: str, raw: str) -> str:
    # Faust wants a scheme on every entry; users often write plain host:port lists.
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    if not entries:
        raise SettingsError(f"{name} is empty")
    return ",".join(entry if "://" in entry else f"kafka://{entry}" for entry in entries)


def _number(
    kind: type[int] | type[float], accepts: Callable[[float], bool], expected: str
) -> Parse:
    """A parser of numbers that `accepts`, naming what it `expected` when the text is not one."""

    def parse(name: str, raw: str) -> int | float:
        try:
            value = kind(raw)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise SettingsError(f"{name}={raw!r}: expected {expected}")
        return value

    return parse


_positive_int = _number(int, lambda value: value >= 1, "a positive integer")
_positive_float = _number(float, lambda value: value > 0, "a positive number of seconds")
_count = _number(int, lambda value: value >= 0, "an integer >= 0")


def _bytes_between(low: int, high: int) -> Parse:
    return _number(
        int, lambda value: low <= value <= high, f"a number of bytes from {low} to {high}"
    )


def _boolean(name: str, raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{name}={raw!r}: expected true or false")
    return value == "true"


#: Units of a duration setting, largest first.
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
#: The longest duration a setting takes: a hundred years (more is `forever` or a typo).
_LONGEST_SECONDS = 36_500 * 86400
FOREVER = "forever"


def _duration(name: str, raw: str) -> timedelta | None:
    """`forever` (None), or a positive whole number of days, hours, minutes or seconds."""
    if raw.lower() == FOREVER:
        return None
    number, unit = raw[:-1], raw[-1:].lower()
    valid = unit in _DURATION_UNITS and number.isascii() and number.isdigit()
    if not valid or not 1 <= int(number) * _DURATION_UNITS[unit] <= _LONGEST_SECONDS:
        raise SettingsError(f"{name}={raw!r}: expected {FOREVER} or a duration such as 90d, 12h, "
                            "30m or 45s, at most 36500d")  # fmt: skip
    return timedelta(seconds=int(number) * _DURATION_UNITS[unit])


def _seconds(least: int) -> Parse:
    """A whole number of days, hours, minutes or seconds, at least `least` seconds."""

    def parse(name: str, raw: str) -> int:
        number, unit = raw[:-1], raw[-1:].lower()
        if unit not in _DURATION_UNITS or not (number.isascii() and number.isdigit()):
            raise SettingsError(f"{name}={raw!r}: expected a duration such as 1m, 1h or 30s")
        seconds = int(number) * _DURATION_UNITS[unit]
        if not least <= seconds <= _LONGEST_SECONDS:
            raise SettingsError(f"{name}={raw!r}: expected at least {least}s, at most 36500d")
        return seconds

    return parse


def _seconds_text(value: int) -> str:
    return _duration_text(timedelta(seconds=value)) if value else "0s"


def _duration_text(value: timedelta | None) -> str:
    if value is None:
        return FOREVER
    seconds = int(value.total_seconds())
    unit = next(unit for unit, size in _DURATION_UNITS.items() if seconds % size == 0)
    return f"{seconds // _DURATION_UNITS[unit]}{unit}"


def _as_text(value: object) -> str:
    """A parsed value as the text its variable held (None: blank)."""
    if value is None:
        return ""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_SECURITY = "security"

#: Every environment variable the worker reads, in the README's order.
SETTINGS: tuple[Setting, ...] = (
    Setting("STREAM_APP_BROKER", "broker", "kafka://localhost:9092", _broker_url,
            "bootstrap servers, comma-separated; the `kafka://` scheme is optional"),
    Setting("STREAM_APP_ID", "app_id", "customer-sessions", _text,
            "app id: consumer group, transactional-id prefix, prefix of internal topics"),
    Setting("STREAM_APP_INPUT_TOPIC", "input_topic", "customer-session-events", _text,
            "topic of input events"),
    Setting("STREAM_APP_OUTPUT_TOPIC", "output_topic", "customer-sessions", _text,
            "topic of CustomerSession snapshots"),
    Setting("STREAM_APP_TRANSITIONS_TOPIC", "transitions_topic", "customer-session-transitions",
            _text, "topic of state transitions"),
    Setting("STREAM_APP_DLQ_TOPIC", "dlq_topic", "customer-session-events-dlq", _text,
            "topic of dead-letter records"),
    Setting("STREAM_APP_PARTITIONS", "partitions", "8", _positive_int,
            "partitions of the input topic when the worker creates it"),
    Setting("STREAM_APP_DATA_DIR", "data_dir", "./data", _path,
            "local state (RocksDB); rebuilt from the changelogs when lost"),
    Setting("STREAM_APP_WEB_PORT", "web_port", "6066", _positive_int,
            "HTTP port (`--web-port` overrides it)"),
    Setting("STREAM_APP_WEB_HOST", "web_host", "0.0.0.0", _text,
            "address the HTTP server binds to (`127.0.0.1`: this machine only)"),
    Setting("STREAM_APP_HTTP_TOKEN", "http_token", "", _optional(_secret),
            "when set, `GET /sessions/...` and `GET /stats/...` need `Authorization: Bearer "
            "<token>`; probes and metrics stay open", secret=True),
    Setting("STREAM_APP_HTTP_TOKEN_FILE", "http_token_file", "", _optional(_path),
            "file holding the token (a mounted secret), instead of `STREAM_APP_HTTP_TOKEN`"),
    Setting("STREAM_APP_PROCESSING_GUARANTEE", "processing_guarantee",
            ProcessingGuarantee.EXACTLY_ONCE.value, _choice(ProcessingGuarantee),
            "`exactly_once` or `at_least_once` (see [Delivery guarantees](#delivery-guarantees))"),
    Setting("STREAM_APP_INSTANCE_ID", "instance_id", "", _optional(_text),
            "the worker's static consumer-group membership id (`group.instance.id`): a worker "
            "restarted under the same id takes its partitions back at once, without a "
            "rebalance; it must be unique among live workers and the same across restarts of "
            "one worker (e.g. the pod name in a StatefulSet)",
            default_doc="host name + a digest of the data directory's path",
            effective=lambda settings: settings.group_instance_id),
    Setting("STREAM_APP_SESSION_TIMEOUT", "session_timeout", "60", _positive_float,
            "seconds without a heartbeat before the group hands a worker's partitions to others "
            "(within the broker's `group.min/max.session.timeout.ms`)"),
    Setting("STREAM_APP_STANDBY_REPLICAS", "standby_replicas", "1", _count,
            "workers that keep a warm copy of each table partition besides its owner (faster "
            "failover, more changelog reading)"),
    Setting("STREAM_APP_MAX_BATCH", "max_batch", "500", _positive_int,
            "the most records of one partition the worker handles as one batch (one state "
            "write per session per batch)"),
    Setting("STREAM_APP_COMMIT_INTERVAL_MS", "commit_interval_ms", "",
            _optional(_positive_int),
            "time between commits; under `exactly_once` outputs become visible at each commit",
            default_doc="`100` under `exactly_once`, `1000` under `at_least_once`",
            effective=lambda settings: str(round(settings.commit_interval * 1000))),
    Setting("STREAM_APP_LOG_FORMAT", "log_format", LogFormat.TEXT.value, _choice(LogFormat),
            "`text` (Faust's log lines) or `json` (one JSON object per line: `time`, `level`, "
            "`logger`, `process`, `message`, and `exc_info` for an error), for the worker's and "
            "Faust's own log lines"),
    Setting("STREAM_APP_ON_PROCESSING_ERROR", "on_processing_error",
            OnProcessingError.DEAD_LETTER.value, _choice(OnProcessingError),
            "what a record whose handling raises does (a bug, or an internal record the worker "
            "cannot read): `dead_letter` sends it to the dead-letter topic as "
            "`processing_error` with the exception's type and text, and the partition goes on; "
            "`stop` stops the worker without committing (it reads the record again on its next "
            "start)"),
    Setting("STREAM_APP_MAX_SESSION_BYTES", "max_session_bytes", str(512 * 1024),
            _bytes_between(MIN_SESSION_BYTES, MAX_SESSION_BYTES),
            f"the largest a session may grow, stored and as a snapshot ({MIN_SESSION_BYTES} to "
            f"{MAX_SESSION_BYTES}): an event that would make it larger is rejected "
            "`session_too_large` and the session keeps its previous state",
            default_doc=f"`{512 * 1024}` (512 KiB)"),
    Setting("STREAM_APP_LEAVE_GROUP_ON_STOP", "leave_group_on_stop", "false", _boolean,
            "`true`: after a clean stop the worker leaves its consumer group at once, so the "
            "others take its partitions (a scale-down); `false`: it stays a member until its "
            "session times out, so a restart under the same instance id moves no partition (a "
            "rolling upgrade)"),
    Setting("STREAM_APP_REPLICATION_FACTOR", "replication_factor", "",
            _optional(_positive_int),
            "replication factor of the topics the worker creates, Faust's changelogs included",
            default_doc="(none: the number of brokers, at most 3)"),
    Setting("STREAM_APP_MIN_INSYNC_REPLICAS", "min_insync_replicas", "",
            _optional(_positive_int),
            "`min.insync.replicas` of the topics the worker creates",
            default_doc="(none: the broker's default)"),
    Setting("STREAM_APP_RETENTION_FINAL", "retention_final", "7d", _duration,
            "how long a cancelled session stays in the table after its last event (event time, "
            "see [Retention](docs/contract.md#10-limits-and-retention)); `forever` keeps them",
            show=_duration_text),
    Setting("STREAM_APP_RETENTION_CLOSED", "retention_closed", "90d", _duration,
            "how long a closed or partially returned session stays after its last event: the "
            "return window, after which a return is rejected `session_not_found`; `forever` "
            "keeps them", show=_duration_text),
    Setting("STREAM_APP_RETENTION_IDLE", "retention_idle", "30d", _duration,
            "how long an open session with no event stays; a later event for it starts a new "
            "session; `forever` keeps them", show=_duration_text),
    Setting("STREAM_APP_RETENTION_SNAPSHOT_TOMBSTONES", "retention_snapshot_tombstones",
            "false", _boolean,
            "`true`: a session leaving the table also gets a tombstone (null value) on the "
            "snapshot topic, so a compacted copy of that topic forgets it too"),
    Setting("STREAM_APP_STATS", "stats", "true", _boolean,
            "`true`: windowed statistics per application on the stats topic and `GET /stats` "
            "(see [Statistics](docs/contract.md#11-session-statistics)); `false`: none"),
    Setting("STREAM_APP_STATS_TOPIC", "stats_topic", "customer-session-stats", _text,
            "topic of the final statistics of each closed window, keyed by applicationId"),
    Setting("STREAM_APP_STATS_WINDOW", "stats_window", "1m", _seconds(1),
            "length of a statistics window (tumbling, event time, aligned on the epoch, UTC)",
            show=_seconds_text),
    Setting("STREAM_APP_STATS_GRACE", "stats_grace", "5m", _seconds(0),
            "how far a partition's stream time goes past a window's end before the window "
            "closes there; an event later than that is not counted", show=_seconds_text),
    Setting("STREAM_APP_STATS_IDLE", "stats_idle", "30s", _seconds(1),
            "a partition with no input for this long, and none waiting, moves its stream time "
            "to the wall clock, so windows close while traffic has stopped", show=_seconds_text),
    Setting("STREAM_APP_STATS_RETENTION", "stats_retention", "7d", _duration,
            "how long after its end (in stream time) a closed window stays answerable by "
            "`GET /stats`; `forever` keeps them", show=_duration_text),
    Setting("STREAM_APP_SECURITY_PROTOCOL", _SECURITY, SecurityProtocol.PLAINTEXT.value, None,
            "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every Kafka client "
            "(worker, topic creation, tools)"),
    Setting("STREAM_APP_SASL_MECHANISM", _SECURITY, SaslMechanism.PLAIN.value, None,
            "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`"),
    Setting("STREAM_APP_SASL_USERNAME", _SECURITY, "", None,
            "SASL user; required with `SASL_*`"),
    Setting("STREAM_APP_SASL_PASSWORD", _SECURITY, "", None,
            "SASL password (never logged or printed)", secret=True),
    Setting("STREAM_APP_SASL_PASSWORD_FILE", _SECURITY, "", None,
            "file holding the password (a mounted secret), instead of `STREAM_APP_SASL_PASSWORD`"),
    Setting("STREAM_APP_SSL_CA_FILE", _SECURITY, "", None,
            "PEM file of the CAs that sign the brokers' certificates",
            default_doc="(none: system CAs)"),
    Setting("STREAM_APP_SSL_CERT_FILE", _SECURITY, "", None,
            "PEM client certificate, for brokers that require one (with its key)"),
    Setting("STREAM_APP_SSL_KEY_FILE", _SECURITY, "", None,
            "PEM key of the client certificate"),
)  # fmt: skip

#: Each variable's default text ("": none).
ENV_DEFAULTS: Mapping[str, str] = {setting.env: setting.default for setting in SETTINGS}
#: The variables KafkaSecurity reads.
SECURITY_ENV: frozenset[str] = frozenset(s.env for s in SETTINGS if s.attribute == _SECURITY)
#: Settings that only a SASL broker or an HTTP token needs (blank by default, or the mechanism).
OPTIONAL_ENV: frozenset[str] = frozenset(
    {name for name, value in ENV_DEFAULTS.items() if not value} | {"STREAM_APP_SASL_MECHANISM"}
)
#: Variables whose values are secrets: never printed, logged or shown in a repr.
SECRET_ENV: frozenset[str] = frozenset(s.env for s in SETTINGS if s.secret)
#: Addresses that only this machine can reach.
LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "::1", "localhost"})


def settings_table() -> str:
    """The README's settings table (Markdown), from the declarations above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {s.documented_default} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True, slots=True)
class Settings:
    """The worker's configuration; built by `Settings.from_env`, never read from env elsewhere.

    Each field's variable, default and parser are declared once, in `SETTINGS`.
    """

    broker: str
    app_id: str
    input_topic: str
    output_topic: str
    transitions_topic: str
    dlq_topic: str
    partitions: int
    data_dir: Path
    web_port: int
    web_host: str
    #: Bearer token required on /sessions/... and /stats/... (None: open).
    http_token: Secret | None
    #: The file the token was read from (a mounted secret), when it came from one.
    http_token_file: Path | None
    processing_guarantee: ProcessingGuarantee
    #: Static group membership id; None: derived from the host and data directory.
    instance_id: str | None
    #: Seconds without a heartbeat before the group gives a worker's partitions to others.
    session_timeout: float
    #: Workers that keep a warm copy of each table partition besides its owner.
    standby_replicas: int
    #: The most records of one partition handled as one batch.
    max_batch: int
    #: How often handled records are committed; None: the guarantee's default (commit_interval).
    commit_interval_ms: int | None
    log_format: LogFormat
    #: A record whose handling raises: dead-lettered as `processing_error`, or the worker stops.
    on_processing_error: OnProcessingError
    #: The largest a session may be, stored (msgpack) and as a snapshot (JSON), in bytes.
    max_session_bytes: int
    #: Leave the consumer group after a clean stop (scale-down), instead of keeping the static
    #: membership for a restart under the same instance id (rolling upgrade: no rebalance).
    leave_group_on_stop: bool
    #: Replication factor of the topics the worker creates; None: the brokers, at most 3.
    replication_factor: int | None
    #: min.insync.replicas of the topics the worker creates; None: the broker's default.
    min_insync_replicas: int | None
    #: How long cancelled / closed or partially returned / idle open sessions stay (None: ever).
    retention_final: timedelta | None
    retention_closed: timedelta | None
    retention_idle: timedelta | None
    #: Whether an expired session also gets a tombstone on the snapshot topic.
    retention_snapshot_tombstones: bool
    #: Windowed statistics per application (contract section 11).
    stats: bool
    stats_topic: str
    #: Window length, grace and idle time, in seconds.
    stats_window: int
    stats_grace: int
    stats_idle: int
    #: How long closed windows stay in the stats table (None: for ever).
    stats_retention: timedelta | None
    security: KafkaSecurity

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every STREAM_APP_* variable once, applying the documented defaults."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            value = env.get(name, "").strip()
            return value or ENV_DEFAULTS[name]

        values: dict[str, Any] = {
            setting.attribute: setting.parse(setting.env, get(setting.env))
            for setting in SETTINGS
            if setting.parse is not None
        }
        try:
            values[_SECURITY] = KafkaSecurity.from_env(get)
        except SecurityError as exc:
            raise SettingsError(str(exc)) from None
        values["http_token"] = _http_token(values["http_token"], values["http_token_file"])
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The STREAM_APP_* variables that `from_env` reads back into these settings."""
        security = self.security.to_env()
        env = {
            setting.env: (
                security[setting.env]
                if setting.attribute == _SECURITY
                else (setting.show or _as_text)(getattr(self, setting.attribute))
            )
            for setting in SETTINGS
        }
        if self.http_token_file is not None:
            # The file, not its content, goes to a child process's environment.
            env["STREAM_APP_HTTP_TOKEN"] = ""
        return env

    def describe(self) -> dict[str, str]:
        """The effective settings as variables, secrets masked: what `stream-app config` prints.

        Values derived when a variable is blank (the instance id, the commit interval) are
        shown as the worker uses them.
        """
        described = self.to_env()
        for setting in SETTINGS:
            if setting.effective is not None:
                described[setting.env] = setting.effective(self)
            if setting.secret and described[setting.env]:
                described[setting.env] = MASK
        return described

    @property
    def retention(self) -> Retention:
        """The retention rules of the sessions table."""
        return Retention(self.retention_final, self.retention_closed, self.retention_idle)

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

    @property
    def internal_topics(self) -> list[str]:
        """The internal topics, which must have the input topic's partition count."""
        topics = [self.claims_topic, self.verdicts_topic, self.rekeyed_topic]
        if self.stats:
            topics += [self.stats_partials_topic, self.stats_ticks_topic]
        return topics

    @property
    def stats_partials_topic(self) -> str:
        """Internal topic: per-partition statistics and watermarks, keyed by applicationId."""
        return f"{self.app_id}-stats-partials"

    @property
    def stats_ticks_topic(self) -> str:
        """Internal topic: wall-clock ticks that move an idle partition's stream time."""
        return f"{self.app_id}-stats-ticks"


def _http_token(inline: Secret | None, token_file: Path | None) -> Secret | None:
    if inline is not None and token_file is not None:
        raise SettingsError("set STREAM_APP_HTTP_TOKEN or STREAM_APP_HTTP_TOKEN_FILE, not both")
    if token_file is None:
        return inline
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise SettingsError(
            f"STREAM_APP_HTTP_TOKEN_FILE={str(token_file)!r}: cannot read it ({exc.strerror})"
        ) from None
    if not token:
        raise SettingsError(f"STREAM_APP_HTTP_TOKEN_FILE={str(token_file)!r} is empty")
    return Secret(token)
