"""Kafka security settings: every client gets the same options, and a password never shows."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream_app.kafka_security import Secret
from stream_app.settings import Settings, SettingsError

PASSWORD = "correct-horse-battery-staple"
SASL_SSL = {
    "STREAM_APP_SECURITY_PROTOCOL": "SASL_SSL",
    "STREAM_APP_SASL_MECHANISM": "SCRAM-SHA-256",
    "STREAM_APP_SASL_USERNAME": "worker",
    "STREAM_APP_SASL_PASSWORD": PASSWORD,
}


def test_a_secret_never_shows_itself() -> None:
    secret = Secret(PASSWORD)

    assert PASSWORD not in repr(secret)
    assert PASSWORD not in str(secret)
    assert PASSWORD not in f"{secret} {secret!r}"
    assert secret.reveal() == PASSWORD


def test_settings_repr_and_description_mask_the_password_and_the_token() -> None:
    settings = Settings.from_env({**SASL_SSL, "STREAM_APP_HTTP_TOKEN": "tok-123"})

    assert PASSWORD not in repr(settings)
    assert "tok-123" not in repr(settings)
    described = settings.describe()
    assert described["STREAM_APP_SASL_PASSWORD"] == "***"
    assert described["STREAM_APP_HTTP_TOKEN"] == "***"
    assert described["STREAM_APP_SASL_USERNAME"] == "worker"


def test_sasl_ssl_gives_aiokafka_and_faust_the_same_options() -> None:
    security = Settings.from_env(SASL_SSL).security

    kwargs = security.client_kwargs()
    credentials = security.faust_credentials()

    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("worker", PASSWORD)
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert isinstance(credentials, SASLCredentials)
    faust_kwargs = credentials_to_aiokafka_auth(credentials)
    assert {k: v for k, v in faust_kwargs.items() if k != "ssl_context"} == {
        k: v for k, v in kwargs.items() if k != "ssl_context"
    }
    assert PASSWORD not in repr(credentials)


def test_sasl_plaintext_has_no_tls() -> None:
    env = {**SASL_SSL, "STREAM_APP_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    security = Settings.from_env(env).security

    assert "ssl_context" not in security.client_kwargs()
    assert credentials_to_aiokafka_auth(security.faust_credentials())["security_protocol"] == (
        "SASL_PLAINTEXT"
    )


def test_plaintext_is_the_default_and_needs_no_credentials() -> None:
    security = Settings.from_env({}).security

    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_the_password_can_come_from_a_mounted_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(PASSWORD + "\n")
    env = {
        **SASL_SSL,
        "STREAM_APP_SASL_PASSWORD": "",
        "STREAM_APP_SASL_PASSWORD_FILE": str(secret_file),
    }

    settings = Settings.from_env(env)

    assert settings.security.client_kwargs()["sasl_plain_password"] == PASSWORD
    # Passed on to a child process as the file, not as the password itself.
    assert settings.to_env()["STREAM_APP_SASL_PASSWORD"] == ""
    assert Settings.from_env(settings.to_env()) == settings


def test_password_and_password_file_together_are_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("x")

    with pytest.raises(SettingsError, match="not both") as raised:
        Settings.from_env({**SASL_SSL, "STREAM_APP_SASL_PASSWORD_FILE": str(secret_file)})
    assert PASSWORD not in str(raised.value)


def test_ssl_with_a_client_certificate_loads_the_files(tmp_path: Path) -> None:
    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=client", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {
        "STREAM_APP_SECURITY_PROTOCOL": "SSL",
        "STREAM_APP_SSL_CA_FILE": str(cert),
        "STREAM_APP_SSL_CERT_FILE": str(cert),
        "STREAM_APP_SSL_KEY_FILE": str(key),
    }

    security = Settings.from_env(env).security

    context = security.client_kwargs()["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert isinstance(security.faust_credentials(), SSLCredentials)
