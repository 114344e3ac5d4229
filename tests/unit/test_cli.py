"""The console command: usage, version, config, worker --help, and clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from stream_app import __version__
from stream_app.cli import COMMANDS, main

#: A bootstrap address nothing answers on: a command that tried Kafka would hang or fail.
UNREACHABLE = "10.255.255.1:9092"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    out = capsys.readouterr().out
    assert "usage: stream-app <command>" in out
    for name in ("worker", "config", "check", "produce", "dlq", "stats", "schema"):
        assert name in COMMANDS
        assert f"  {name} " in out


def test_version_names_the_release_and_the_pinned_libraries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith(f"stream-app {__version__} (")
    assert "faust-streaming 0.15.3" in out
    assert "aiokafka 0.14." in out


@pytest.mark.parametrize("command", ["produce", "dlq", "stats", "schema"])
def test_each_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: stream-app {command}" in capsys.readouterr().out


def test_unknown_command_exits_with_usage() -> None:
    with pytest.raises(SystemExit, match="unknown command 'serve'"):
        main(["serve"])


def test_bad_setting_exits_before_touching_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_APP_PROCESSING_GUARANTEE", "twice")
    with pytest.raises(SystemExit, match="STREAM_APP_PROCESSING_GUARANTEE='twice'"):
        main(["worker"])


def test_schema_asyncapi_takes_topic_names_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_APP_OUTPUT_TOPIC", "snapshots-eu")
    with pytest.raises(SystemExit) as exited:
        main(["schema", "--asyncapi"])
    assert exited.value.code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["channels"]["sessions"]["address"] == "snapshots-eu"


def test_config_prints_effective_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_APP_WEB_PORT", "7001")
    monkeypatch.setenv("STREAM_APP_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STREAM_APP_SASL_USERNAME", "worker")
    monkeypatch.setenv("STREAM_APP_SASL_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("STREAM_APP_HTTP_TOKEN", "token-secret")
    # Faust's own variable: not a setting, so not shown and not acted on.
    monkeypatch.setenv("PROCESSING_GUARANTEE", "at_least_once")

    main(["config"])

    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["STREAM_APP_WEB_PORT"] == "7001"
    assert lines["STREAM_APP_PROCESSING_GUARANTEE"] == "exactly_once"
    assert lines["STREAM_APP_SASL_USERNAME"] == "worker"
    assert lines["STREAM_APP_SASL_PASSWORD"] == "***"
    assert lines["STREAM_APP_HTTP_TOKEN"] == "***"
    assert "hunter2-secret" not in str(lines)
    assert "token-secret" not in str(lines)
    assert all(name.startswith("STREAM_APP_") for name in lines)
    # Derived values are shown as the worker uses them, not blank.
    assert lines["STREAM_APP_COMMIT_INTERVAL_MS"] == "100"
    assert lines["STREAM_APP_INSTANCE_ID"]


def test_help_of_every_command_exits_zero() -> None:
    for name in COMMANDS:
        result = subprocess.run(
            [sys.executable, "-m", "stream_app", name, "--help"],
            env={**os.environ, "STREAM_APP_BROKER": UNREACHABLE},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (name, result.stderr)
        assert "usage" in result.stdout.lower(), name


def test_worker_help_prints_faust_options_without_contacting_kafka() -> None:
    env = {**os.environ, "STREAM_APP_BROKER": UNREACHABLE}
    started = time.monotonic()

    result = subprocess.run(
        [sys.executable, "-m", "stream_app", "worker", "--help"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "worker [OPTIONS]" in result.stdout
    assert "--web-port" in result.stdout
    assert "--loglevel" in result.stdout
    # Contacting the unreachable broker would take the client's timeouts (tens of seconds).
    assert time.monotonic() - started < 20
