"""Settings are read once from the environment, with documented defaults and clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stream_app.domain.retention import Retention
from stream_app.kafka_security import SaslMechanism, SecurityProtocol
from stream_app.settings import (
    ENV_DEFAULTS,
    SECRET_ENV,
    SETTINGS,
    LogFormat,
    OnProcessingError,
    ProcessingGuarantee,
    Settings,
    SettingsError,
    _seconds,
)


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.broker == "kafka://localhost:9092"
    assert settings.app_id == "customer-sessions"
    assert settings.input_topic == "customer-session-events"
    assert settings.output_topic == "customer-sessions"
    assert settings.transitions_topic == "customer-session-transitions"
    assert settings.dlq_topic == "customer-session-events-dlq"
    assert settings.partitions == 8
    assert settings.web_port == 6066
    assert settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE
    assert settings.data_dir == Path("./data")
    assert settings.web_host == "0.0.0.0"
    assert settings.http_token is None
    assert (settings.session_timeout, settings.standby_replicas) == (60.0, 1)
    assert settings.security.protocol is SecurityProtocol.PLAINTEXT
    assert settings.log_format is LogFormat.TEXT
    assert (settings.stats, settings.stats_topic) == (True, "customer-session-stats")
    assert (settings.stats_window, settings.stats_grace, settings.stats_idle) == (60, 300, 30)
    assert settings.stats_retention == timedelta(days=7)


def test_every_variable_is_read() -> None:
    env = {
        "STREAM_APP_BROKER": "k1:9092, kafka://k2:9093",
        "STREAM_APP_ID": "sessions-eu",
        "STREAM_APP_INPUT_TOPIC": "in",
        "STREAM_APP_OUTPUT_TOPIC": "out",
        "STREAM_APP_TRANSITIONS_TOPIC": "tr",
        "STREAM_APP_DLQ_TOPIC": "dlq",
        "STREAM_APP_PARTITIONS": "12",
        "STREAM_APP_DATA_DIR": "/var/lib/stream-app",
        "STREAM_APP_WEB_PORT": "7000",
        "STREAM_APP_PROCESSING_GUARANTEE": "at_least_once",
        "STREAM_APP_INSTANCE_ID": "worker-7",
        "STREAM_APP_WEB_HOST": "127.0.0.1",
        "STREAM_APP_HTTP_TOKEN": "t0ken",
        "STREAM_APP_HTTP_TOKEN_FILE": "",
        "STREAM_APP_SESSION_TIMEOUT": "10",
        "STREAM_APP_STANDBY_REPLICAS": "0",
        "STREAM_APP_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAM_APP_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAM_APP_SASL_USERNAME": "worker",
        "STREAM_APP_SASL_PASSWORD": "pa55",
        "STREAM_APP_SASL_PASSWORD_FILE": "",
        "STREAM_APP_SSL_CA_FILE": "",
        "STREAM_APP_SSL_CERT_FILE": "",
        "STREAM_APP_SSL_KEY_FILE": "",
        "STREAM_APP_MAX_BATCH": "50",
        "STREAM_APP_COMMIT_INTERVAL_MS": "250",
        "STREAM_APP_LOG_FORMAT": "json",
        "STREAM_APP_ON_PROCESSING_ERROR": "stop",
        "STREAM_APP_MAX_SESSION_BYTES": "65536",
        "STREAM_APP_LEAVE_GROUP_ON_STOP": "true",
        "STREAM_APP_REPLICATION_FACTOR": "2",
        "STREAM_APP_MIN_INSYNC_REPLICAS": "2",
        "STREAM_APP_RETENTION_FINAL": "36h",
        "STREAM_APP_RETENTION_CLOSED": "forever",
        "STREAM_APP_RETENTION_IDLE": "90m",
        "STREAM_APP_RETENTION_SNAPSHOT_TOMBSTONES": "true",
        "STREAM_APP_STATS": "false",
        "STREAM_APP_STATS_TOPIC": "stats-eu",
        "STREAM_APP_STATS_WINDOW": "5m",
        "STREAM_APP_STATS_GRACE": "0s",
        "STREAM_APP_STATS_IDLE": "45s",
        "STREAM_APP_STATS_RETENTION": "forever",
    }
    assert set(env) == set(ENV_DEFAULTS)
    settings = Settings.from_env(env)
    assert settings.broker == "kafka://k1:9092,kafka://k2:9093"
    assert settings.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert (settings.app_id, settings.input_topic, settings.output_topic) == (
        "sessions-eu", "in", "out",
    )  # fmt: skip
    assert (settings.transitions_topic, settings.dlq_topic) == ("tr", "dlq")
    assert settings.partitions == 12
    assert settings.data_dir == Path("/var/lib/stream-app")
    assert settings.web_port == 7000
    assert settings.processing_guarantee is ProcessingGuarantee.AT_LEAST_ONCE
    assert settings.group_instance_id == "worker-7"
    assert settings.web_host == "127.0.0.1"
    assert settings.http_token is not None
    assert settings.http_token.reveal() == "t0ken"
    assert (settings.session_timeout, settings.standby_replicas) == (10.0, 0)
    assert settings.security.protocol is SecurityProtocol.SASL_PLAINTEXT
    assert settings.security.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    assert settings.security.sasl_username == "worker"
    assert Settings.from_env(settings.to_env()) == settings
    assert (settings.max_batch, settings.commit_interval) == (50, 0.25)
    assert settings.log_format is LogFormat.JSON
    assert settings.on_processing_error is OnProcessingError.STOP
    assert settings.max_session_bytes == 65536
    assert settings.leave_group_on_stop is True
    assert settings.replication_for(brokers=5) == 2
    assert settings.topic_configs == {"min.insync.replicas": "2"}
    assert settings.retention == Retention(
        final=timedelta(hours=36), closed=None, idle=timedelta(minutes=90)
    )
    assert settings.retention_snapshot_tombstones is True
    assert (settings.stats, settings.stats_topic) == (False, "stats-eu")
    assert (settings.stats_window, settings.stats_grace, settings.stats_idle) == (300, 0, 45)
    assert settings.stats_retention is None
    # Internal topics follow the app id, so two deployments never share them.
    assert settings.claims_topic == "sessions-eu-profile-claims"
    assert settings.verdicts_topic == "sessions-eu-profile-verdicts"
    assert settings.rekeyed_topic == "sessions-eu-rekeyed-events"
    assert settings.stats_partials_topic == "sessions-eu-stats-partials"
    assert settings.stats_ticks_topic == "sessions-eu-stats-ticks"


def test_empty_values_fall_back_to_defaults() -> None:
    assert Settings.from_env({"STREAM_APP_PARTITIONS": "  "}).partitions == 8


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("STREAM_APP_PARTITIONS", "zero", "STREAM_APP_PARTITIONS='zero'"),
        ("STREAM_APP_PARTITIONS", "0", "positive integer"),
        ("STREAM_APP_WEB_PORT", "-1", "STREAM_APP_WEB_PORT"),
        ("STREAM_APP_PROCESSING_GUARANTEE", "maybe_once", "exactly_once, at_least_once"),
        ("STREAM_APP_BROKER", ",", "STREAM_APP_BROKER is empty"),
        ("STREAM_APP_SESSION_TIMEOUT", "0", "positive number of seconds"),
        ("STREAM_APP_STANDBY_REPLICAS", "-1", "integer >= 0"),
        ("STREAM_APP_LOG_FORMAT", "xml", "STREAM_APP_LOG_FORMAT='xml': expected one of text, json"),
        ("STREAM_APP_ON_PROCESSING_ERROR", "ignore", "expected one of dead_letter, stop"),
        ("STREAM_APP_MAX_SESSION_BYTES", "100", "bytes from 4096 to 4194304"),
        ("STREAM_APP_MAX_SESSION_BYTES", "1MB", "bytes from 4096 to 4194304"),
        ("STREAM_APP_LEAVE_GROUP_ON_STOP", "yes", "expected true or false"),
        ("STREAM_APP_RETENTION_FINAL", "7", "expected forever or a duration such as 90d"),
        ("STREAM_APP_RETENTION_CLOSED", "0d", "expected forever or a duration"),
        ("STREAM_APP_RETENTION_IDLE", "1w", "expected forever or a duration"),
        ("STREAM_APP_SECURITY_PROTOCOL", "TLS", "PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL"),
        ("STREAM_APP_SASL_MECHANISM", "GSSAPI", "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512"),
        ("STREAM_APP_SECURITY_PROTOCOL", "SASL_SSL", "needs STREAM_APP_SASL_USERNAME"),
        ("STREAM_APP_SSL_CA_FILE", "/nonexistent/ca.pem", "no such file"),
        ("STREAM_APP_SSL_CERT_FILE", "/nonexistent/c.pem", "go together"),
        ("STREAM_APP_SASL_PASSWORD_FILE", "/nonexistent/pw", "cannot read it"),
        ("STREAM_APP_STATS", "on", "expected true or false"),
        ("STREAM_APP_STATS_WINDOW", "0s", "STREAM_APP_STATS_WINDOW='0s': expected at least 1s"),
        ("STREAM_APP_STATS_IDLE", "0m", "expected at least 1s"),
        ("STREAM_APP_STATS_RETENTION", "0d", "expected forever or a duration"),
        ("STREAM_APP_STATS_GRACE", "999999999999d", "at most 36500d"),
        ("STREAM_APP_RETENTION_IDLE", "36501d", "at most 36500d"),
    ],
)
def test_bad_values_are_named_in_the_error(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=expected.replace("(", r"\(")):
        Settings.from_env({name: value})


def test_the_group_instance_id_follows_the_data_directory(tmp_path: Path) -> None:
    one = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path / "w1")})
    again = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path / "w1")})
    other = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path / "w2")})
    # A restarted worker comes back under the same id; two workers never share one.
    assert one.instance_id is None
    assert one.group_instance_id == again.group_instance_id
    assert one.group_instance_id != other.group_instance_id


def test_settings_survive_a_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"STREAM_APP_DATA_DIR": str(tmp_path), "STREAM_APP_PARTITIONS": "3"}
    )
    assert Settings.from_env(settings.to_env()) == settings
    named = Settings.from_env({"STREAM_APP_INSTANCE_ID": "pod-0"})
    assert Settings.from_env(named.to_env()).group_instance_id == "pod-0"


def test_the_commit_interval_follows_the_guarantee_unless_set() -> None:
    assert Settings.from_env({}).commit_interval == 0.1
    alo = {"STREAM_APP_PROCESSING_GUARANTEE": "at_least_once"}
    assert Settings.from_env(alo).commit_interval == 1.0
    assert Settings.from_env({**alo, "STREAM_APP_COMMIT_INTERVAL_MS": "20"}).commit_interval == 0.02


def test_the_http_token_can_come_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    settings = Settings.from_env({"STREAM_APP_HTTP_TOKEN_FILE": str(token_file)})
    assert settings.http_token is not None
    assert settings.http_token.reveal() == "s3cret-token"
    # The file, not its content, goes back into the environment of child processes.
    assert settings.to_env()["STREAM_APP_HTTP_TOKEN"] == ""
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({"STREAM_APP_HTTP_TOKEN_FILE": str(token_file),
                           "STREAM_APP_HTTP_TOKEN": "t"})  # fmt: skip
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings.from_env({"STREAM_APP_HTTP_TOKEN_FILE": str(tmp_path / "empty")})


@pytest.mark.parametrize(
    ("host", "token", "exposed"),
    [("0.0.0.0", "", True), ("127.0.0.1", "", False), ("0.0.0.0", "t", False),
     ("10.1.2.3", "", True), ("localhost", "", False)],
)  # fmt: skip
def test_http_beyond_loopback_without_a_token_is_flagged(
    host: str, token: str, exposed: bool
) -> None:
    env = {"STREAM_APP_WEB_HOST": host, "STREAM_APP_HTTP_TOKEN": token}
    assert Settings.from_env(env).http_exposed_without_token is exposed


def test_replication_follows_the_brokers_up_to_three_unless_set() -> None:
    settings = Settings.from_env({})
    assert [settings.replication_for(n) for n in (1, 2, 3, 6)] == [1, 2, 3, 3]
    assert settings.topic_configs == {}
    with pytest.raises(SettingsError, match="STREAM_APP_REPLICATION_FACTOR='0'"):
        Settings.from_env({"STREAM_APP_REPLICATION_FACTOR": "0"})


def test_each_declared_setting_is_read_exported_and_described_through_its_declaration(
    tmp_path: Path,
) -> None:
    # Every field of Settings is filled by exactly one declared variable (security: a group).
    fields = set(Settings.__dataclass_fields__)
    declared = {setting.attribute for setting in SETTINGS}
    assert declared == fields
    assert len({setting.env for setting in SETTINGS}) == len(SETTINGS)
    defaults = Settings.from_env({})
    for setting in SETTINGS:
        assert setting.env.startswith("STREAM_APP_")
        if setting.parse is not None:
            parsed = setting.parse(setting.env, setting.default) if setting.default else None
            assert getattr(defaults, setting.attribute) == parsed, setting.env
    # Secrets are masked by `config`, derived values shown as the worker uses them.
    described = Settings.from_env(
        {"STREAM_APP_HTTP_TOKEN": "t0ken", "STREAM_APP_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
         "STREAM_APP_SASL_USERNAME": "u", "STREAM_APP_SASL_PASSWORD": "pw",
         "STREAM_APP_DATA_DIR": str(tmp_path)}
    ).describe()  # fmt: skip
    assert set(described) == set(ENV_DEFAULTS)
    assert {name for name, value in described.items() if value == "***"} == SECRET_ENV
    assert described["STREAM_APP_COMMIT_INTERVAL_MS"] == "100"
    assert described["STREAM_APP_INSTANCE_ID"].endswith(
        Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)}).group_instance_id[-10:]
    )


def test_retention_defaults_follow_the_session_lifecycle() -> None:
    retention = Settings.from_env({}).retention
    assert retention == Retention(
        final=timedelta(days=7), closed=timedelta(days=90), idle=timedelta(days=30)
    )
    off = {f"STREAM_APP_RETENTION_{name}": "forever" for name in ("FINAL", "CLOSED", "IDLE")}
    assert not Settings.from_env(off).retention.enabled
    assert Settings.from_env(off).to_env()["STREAM_APP_RETENTION_IDLE"] == "forever"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("1m", 60), ("2h", 7200), ("1d", 86400), ("90S", 90), ("15M", 900),
     (" 10m ", 600)],
)  # fmt: skip
def test_statistics_durations_are_whole_seconds(value: str, seconds: int) -> None:
    for name in ("STREAM_APP_STATS_WINDOW", "STREAM_APP_STATS_GRACE", "STREAM_APP_STATS_IDLE"):
        settings = Settings.from_env({name: value})
        attribute = name.removeprefix("STREAM_APP_").lower()
        assert getattr(settings, attribute) == seconds, name
        # Exported in the largest whole unit, and read back the same.
        assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    "value", ["0s", "0m", "60", "1", "1.5m", "-1m", "+1m", "m", "1w", "1 m", "forever", "1m30s"]
)
def test_a_statistics_window_must_be_a_positive_duration(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^STREAM_APP_STATS_WINDOW="):
        Settings.from_env({"STREAM_APP_STATS_WINDOW": value})


def test_the_statistics_grace_may_be_zero_but_no_less() -> None:
    zero = Settings.from_env({"STREAM_APP_STATS_GRACE": "0s"})
    assert zero.stats_grace == 0
    assert zero.to_env()["STREAM_APP_STATS_GRACE"] == "0s"
    assert Settings.from_env(zero.to_env()) == zero
    assert Settings.from_env({"STREAM_APP_STATS_GRACE": "0h"}).stats_grace == 0
    for garbage in ("-5s", "5", "later", "forever"):
        with pytest.raises(SettingsError, match=r"STREAM_APP_STATS_GRACE=.*expected a duration"):
            Settings.from_env({"STREAM_APP_STATS_GRACE": garbage})


def test_statistics_durations_are_shown_in_their_largest_whole_unit() -> None:
    settings = Settings.from_env(
        {"STREAM_APP_STATS_WINDOW": "3600s", "STREAM_APP_STATS_GRACE": "90s",
         "STREAM_APP_STATS_IDLE": "120s"}
    )  # fmt: skip
    shown = settings.describe()
    assert shown["STREAM_APP_STATS_WINDOW"] == "1h"
    assert shown["STREAM_APP_STATS_GRACE"] == "90s"
    assert shown["STREAM_APP_STATS_IDLE"] == "2m"
    assert Settings.from_env({}).describe()["STREAM_APP_STATS_RETENTION"] == "7d"


def test_the_duration_parser_takes_its_least_value() -> None:
    assert _seconds(0)("X", "0s") == 0
    assert _seconds(60)("X", "1m") == 60
    with pytest.raises(SettingsError, match=r"X='59s': expected at least 60s"):
        _seconds(60)("X", "59s")
    with pytest.raises(SettingsError, match=r"X='0d': expected at least 1s"):
        _seconds(1)("X", "0d")
