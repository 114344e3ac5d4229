"""STREAM_APP_LOG_FORMAT: Faust's text lines, or one JSON object per line without secrets."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mode.utils.logging import setup_logging

from stream_app.settings import LogFormat, Settings
from stream_app.worker.logs import json_formatter, logging_config

PASSWORD, TOKEN = "pa55-w0rd", "t0ken-s3cret"
SETTINGS = Settings.from_env(
    {
        "STREAM_APP_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAM_APP_SASL_USERNAME": "worker",
        "STREAM_APP_SASL_PASSWORD": PASSWORD,
        "STREAM_APP_HTTP_TOKEN": TOKEN,
        "STREAM_APP_LOG_FORMAT": "json",
    }
)


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("stream_app.worker", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_line_with_the_expected_keys() -> None:
    line = json_formatter().format(_record("rebalance %d done", 3))

    assert "\n" not in line
    rendered = json.loads(line)
    assert set(rendered) == {"time", "level", "logger", "process", "message"}
    assert rendered["message"] == "rebalance 3 done"
    assert (rendered["level"], rendered["logger"]) == ("INFO", "stream_app.worker")
    assert rendered["time"].endswith("+00:00")


def test_an_exception_is_carried_in_the_line() -> None:
    try:
        raise ValueError("bad offset")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    rendered = json.loads(json_formatter().format(record))

    assert "ValueError: bad offset" in rendered["exc_info"]


def test_secrets_are_never_in_a_json_line() -> None:
    line = json_formatter().format(
        _record("settings %s %r", SETTINGS, SETTINGS.security, settings=SETTINGS)
    )

    assert "sasl_username='worker'" in line
    assert PASSWORD not in line
    assert TOKEN not in line


def test_text_keeps_fausts_own_format() -> None:
    assert logging_config(LogFormat.TEXT) is None


@pytest.fixture
def root_logging() -> Iterator[None]:
    """mode's setup replaces the root logger's handlers; they are put back afterwards."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    for handler in logging.root.handlers:
        handler.close()
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_json_reaches_fausts_own_loggers_through_modes_setup(tmp_path: Path) -> None:
    log_file = tmp_path / "worker.log"
    config = logging_config(SETTINGS.log_format)
    assert config is not None

    # What Faust's worker does with the app's logging_config at start (mode.utils.logging).
    setup_logging(loglevel="info", logfile=str(log_file), logging_config=dict(config))
    logging.getLogger("faust.tables.recovery").info("Restore complete!")
    logging.getLogger("stream_app.worker").debug("below the level given with -l")
    for handler in logging.root.handlers:
        handler.flush()

    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("faust.tables.recovery", "Restore complete!")
    ]
