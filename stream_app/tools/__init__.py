"""Operator commands of `stream-app` beside the worker: produce, dlq, schema."""

from __future__ import annotations

import sys

from stream_app.settings import Settings, SettingsError


def load_settings() -> Settings:
    """The STREAM_APP_* settings, or exit with the message naming the bad variable."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"stream-app: {exc}")
