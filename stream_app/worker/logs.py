"""The worker's log format: Faust's text lines, or one JSON object per line.

Faust's worker configures logging through mode (`mode.utils.logging.setup_logging`), which
names two formatters, "default" (a log file) and "colored" (the console). The app's
`logging_config`, merged into mode's, replaces both with a JSON formatter: Faust's, aiokafka's
and the worker's own lines all come out as JSON, to whichever stream or file mode chose, at
the level given on the command line (`-l`).
"""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.json import JsonFormatter

from stream_app.settings import LogFormat

#: Record attributes each JSON line carries, and the keys they are written under.
JSON_FIELDS = {"levelname": "level", "name": "logger", "process": "process", "message": "message"}


def json_formatter() -> JsonFormatter:
    """A formatter writing a record as one JSON line: time, level, logger, process, message."""
    return JsonFormatter(
        " ".join(f"%({field})s" for field in JSON_FIELDS),
        rename_fields={k: v for k, v in JSON_FIELDS.items() if k != v},
        timestamp="time",
    )


def logging_config(log_format: LogFormat) -> dict[str, Any] | None:
    """The app's `logging_config` for a log format (None: Faust's own text format)."""
    if log_format is LogFormat.TEXT:
        return None
    formatter = {"()": f"{__name__}.json_formatter"}
    # "merge": mode keeps its handlers, root logger and level; only the formatters change.
    return {"merge": True, "formatters": {"default": formatter, "colored": dict(formatter)}}
