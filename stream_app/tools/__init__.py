"""Operator commands of `stream-app` beside the worker: check, produce, dlq, stats, schema; and
what the console command and they share: reading the settings, redacting secrets, aiokafka's
causes."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from stream_app.settings import Settings, SettingsError


def load_settings() -> Settings:
    """The STREAM_APP_* settings, or exit with the message naming the bad variable."""
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
