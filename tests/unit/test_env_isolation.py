"""Only STREAM_APP_* variables configure the worker: Faust's own are ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.settings import Settings
from stream_app.worker.app import create_worker

#: What Faust would otherwise read from the environment and let replace the app's arguments.
FAUST_ENV = {
    "PROCESSING_GUARANTEE": "at_least_once",
    # What a Kubernetes Service named "web" injects into every pod of its namespace.
    "WEB_PORT": "tcp://10.0.0.1:6066",
    "BROKER_URL": "kafka://elsewhere:9092",
    "BROKER_SESSION_TIMEOUT": "1",
    "TABLE_STANDBY_REPLICAS": "5",
    "WEB_BIND": "10.0.0.1",
    "APP_WEB_TABLES_ENABLED": "true",
    "APP_DATADIR": "/tmp/elsewhere",
    "APP_ENV_PREFIX": "OTHER_",
}


def test_faust_environment_variables_change_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in FAUST_ENV.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setenv(f"OTHER_{name}", value)
    settings = Settings.from_env({"STREAM_APP_DATA_DIR": str(tmp_path)})

    conf = create_worker(settings, 4).app.conf

    assert conf.processing_guarantee.value == "exactly_once"
    assert conf.web_port == 6066
    assert conf.web_bind == "0.0.0.0"
    assert [str(url) for url in conf.broker] == ["kafka://localhost:9092"]
    assert conf.broker_session_timeout == 60.0
    assert conf.table_standby_replicas == 1
    assert conf.web_tables_enabled is False
    assert conf.web_router_enabled is False
    assert Path(conf.datadir) == tmp_path


def test_session_timeout_standby_replicas_and_bind_address_are_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "STREAM_APP_DATA_DIR": str(tmp_path),
            "STREAM_APP_SESSION_TIMEOUT": "10",
            "STREAM_APP_STANDBY_REPLICAS": "0",
            "STREAM_APP_WEB_HOST": "127.0.0.1",
            "STREAM_APP_PROCESSING_GUARANTEE": "at_least_once",
        }
    )

    conf = create_worker(settings, 4).app.conf

    assert conf.broker_session_timeout == 10.0
    assert conf.broker_request_timeout >= conf.broker_session_timeout
    assert conf.table_standby_replicas == 0
    assert conf.web_bind == "127.0.0.1"
    assert conf.processing_guarantee.value == "at_least_once"


def test_a_session_timeout_beyond_the_request_timeout_is_accepted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"STREAM_APP_DATA_DIR": str(tmp_path), "STREAM_APP_SESSION_TIMEOUT": "300"}
    )

    conf = create_worker(settings, 4).app.conf

    assert conf.broker_session_timeout == 300.0
    assert conf.broker_request_timeout > 300.0
