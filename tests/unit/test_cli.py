"""The console command: usage, unknown commands and bad settings fail with a clear message."""

from __future__ import annotations

import json

import pytest

from stream_app.cli import main


def test_help_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    out = capsys.readouterr().out
    assert "usage: stream-app worker" in out
    for command in ("produce FILE|-", "dlq summary|tail|replay", "schema"):
        assert f"stream-app {command}" in out


@pytest.mark.parametrize("command", ["produce", "dlq", "schema"])
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
