"""`stream-app stats`: one application's windowed statistics, asked of a worker over HTTP."""

from __future__ import annotations

import argparse
import http.client
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
from msgspec import Struct

from stream_app.domain.stats import WindowStats
from stream_app.settings import Settings
from stream_app.tools import load_settings, redact

#: Seconds the worker may take to answer, by default (--timeout).
TIMEOUT_DEFAULT = 10.0

DESCRIPTION = """\
Ask a worker for the statistics windows of application APP (GET /stats/APP) and print them
as a table, oldest first: closed windows (final, as published on the stats topic) and the
ones still open. Any worker answers; it forwards the request to the one holding APP's windows.

--from and --to select the windows whose start is in [from, to): an ISO 8601 time (UTC when
it has no offset, 2026-11-25T10:00:00Z), epoch seconds, or a duration before now (30m, 2h,
7d). Without them, every window the worker still keeps (STREAM_APP_STATS_RETENTION).

The worker is http://127.0.0.1:$STREAM_APP_WEB_PORT unless --url names another; the request
carries `Authorization: Bearer` with STREAM_APP_HTTP_TOKEN (or the content of
STREAM_APP_HTTP_TOKEN_FILE) when set, and goes straight to the worker, not through an HTTP
proxy.

columns:
  start, end   windowStart, windowEnd (UTC)
  window       closed (final) or open (still counting)
  created      sessionsCreated         closed     sessionsClosed
  cancelled    sessionsCancelled       partial    sessionsPartiallyReturned
  revenue      revenueClosed           returned   returnedValue
  abandoned    abandonedValue          coupons    couponsApplied
  events       eventsApplied

exit status: 0 with the windows (none is no error), 1 when the worker cannot be reached or
refuses the request (401 token, 400 bad APP or time, 404 no statistics there), 2 for bad
options.
"""

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class StatsError(Exception):
    """The worker could not be asked, or did not answer with statistics; the message says why."""


class StatsAnswer(Struct, frozen=True, rename="camel"):
    """The body of a 200 answer to GET /stats/{applicationId}."""

    application_id: int
    windows: list[WindowStats]


_answer_decoder = msgspec.json.Decoder(StatsAnswer)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the table: its header, how a window fills it, and whether it is a figure
    (right-aligned)."""

    header: str
    value: Callable[[WindowStats], str]
    figure: bool = True


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal) -> str:
    # Exactly the decimal the worker summed; never in exponent notation.
    return format(value, "f")


COLUMNS: tuple[Column, ...] = (
    Column("start", lambda w: _time(w.window_start), figure=False),
    Column("end", lambda w: _time(w.window_end), figure=False),
    Column("window", lambda w: "closed" if w.closed else "open", figure=False),
    Column("created", lambda w: str(w.sessions_created)),
    Column("closed", lambda w: str(w.sessions_closed)),
    Column("cancelled", lambda w: str(w.sessions_cancelled)),
    Column("partial", lambda w: str(w.sessions_partially_returned)),
    Column("revenue", lambda w: _money(w.revenue_closed)),
    Column("returned", lambda w: _money(w.returned_value)),
    Column("abandoned", lambda w: _money(w.abandoned_value)),
    Column("coupons", lambda w: str(w.coupons_applied)),
    Column("events", lambda w: str(w.events_applied)),
)


def table(windows: Sequence[WindowStats]) -> str:
    """The windows as aligned plain text, one line each under a header line."""
    rows = [[column.value(window) for column in COLUMNS] for window in windows]
    widths = [
        max([len(column.header), *(len(row[i]) for row in rows)])
        for i, column in enumerate(COLUMNS)
    ]
    lines = []
    for cells in [[column.header for column in COLUMNS], *rows]:
        parts = [
            cell.rjust(width) if column.figure else cell.ljust(width)
            for column, cell, width in zip(COLUMNS, cells, widths, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def query_bound(text: str, now: float | None = None) -> str:
    """A --from/--to value as the worker takes it: a duration before now becomes epoch
    seconds; anything else is passed on for the worker to read (or refuse with 400)."""
    match = _DURATION.match(text.strip())
    if match is None:
        return text.strip()
    ago = float(match.group(1)) * _SECONDS[match.group(2)]
    return str(int((time.time() if now is None else now) - ago))


def stats_url(base: str, application: str, start: str | None, stop: str | None) -> str:
    """The URL of GET /stats/{applicationId} on the worker at `base`."""
    params = {name: value for name, value in (("from", start), ("to", stop)) if value}
    url = f"{base.rstrip('/')}/stats/{urllib.parse.quote(application, safe='')}"
    return f"{url}?{urllib.parse.urlencode(params)}" if params else url


def fetch(url: str, settings: Settings, timeout: float) -> bytes:
    """GET `url` with the configured bearer token; the body of a 200 answer, or StatsError."""
    headers = {"Accept": "application/json"}
    if settings.http_token is not None:
        headers["Authorization"] = f"Bearer {settings.http_token.reveal()}"
    request = urllib.request.Request(url, headers=headers)
    # Straight to the worker: no HTTP proxy from the environment sees the token.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        try:
            detail = _error_detail(exc.read())
        except OSError:
            detail = ""
        finally:
            exc.close()
        raise StatsError(_refusal(exc.code, url, detail, settings)) from None
    except http.client.HTTPException as exc:
        raise StatsError(f"no HTTP answer from {url}: {exc!r}") from None
    except (OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            raise StatsError(f"the worker at {url} did not answer within {timeout:g} s") from None
        raise StatsError(f"cannot reach the worker at {url}: {reason}") from None


def _error_detail(body: bytes) -> str:
    """The worker's `{"error": ...}` message, or the start of whatever else it sent."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode("utf-8", "replace").strip()[:200]
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if isinstance(error, str):
        return error
    return body.decode("utf-8", "replace").strip()[:200]


def _refusal(status: int, url: str, detail: str, settings: Settings) -> str:
    said = f": {detail}" if detail else ""
    if status == 401:
        if settings.http_token is None:
            return (f"the worker at {url} requires a bearer token (HTTP 401): set "
                    "STREAM_APP_HTTP_TOKEN or STREAM_APP_HTTP_TOKEN_FILE")  # fmt: skip
        return (f"the worker at {url} refused the bearer token of STREAM_APP_HTTP_TOKEN or "
                "STREAM_APP_HTTP_TOKEN_FILE (HTTP 401)")  # fmt: skip
    if status == 400:
        return f"the worker refused the request {url} (HTTP 400){said}"
    if status == 404:
        return (f"no statistics at {url} (HTTP 404){said}: is STREAM_APP_STATS false on that "
                "worker, or is it a version without them?")  # fmt: skip
    return f"the worker at {url} answered HTTP {status}{said}"


def decode_answer(body: bytes, url: str) -> StatsAnswer:
    """The windows of a 200 answer, or StatsError when it is something else."""
    try:
        return _answer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StatsError(f"the answer of {url} is not statistics: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `stream-app stats`."""
    parser = argparse.ArgumentParser(
        prog="stream-app stats",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("application", metavar="APP", help="the applicationId")
    parser.add_argument("--from", dest="start", metavar="TIME",
                        help="windows starting at or after TIME")  # fmt: skip
    parser.add_argument("--to", dest="stop", metavar="TIME", help="windows starting before TIME")
    parser.add_argument("--url", help="the worker's base URL (default http://127.0.0.1:"
                        "$STREAM_APP_WEB_PORT)")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="print the worker's JSON answer as it is")  # fmt: skip
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_DEFAULT,
        metavar="SECONDS",
        help=f"how long to wait for the answer (default {TIMEOUT_DEFAULT:g})",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run `stream-app stats`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.url is not None and urllib.parse.urlsplit(args.url).scheme not in {"http", "https"}:
        parser.error(f"--url {args.url!r}: expected http://HOST:PORT or https://HOST:PORT")
    if args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")
    settings = load_settings()
    base = args.url or f"http://127.0.0.1:{settings.web_port}"
    start = None if args.start is None else query_bound(args.start)
    stop = None if args.stop is None else query_bound(args.stop)
    url = stats_url(base, args.application, start, stop)
    try:
        body = fetch(url, settings, args.timeout)
        if args.json:
            text = body.decode("utf-8", "replace")
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return 0
        answer = decode_answer(body, url)
    except StatsError as exc:
        print(redact(f"stream-app stats: {exc}", settings), file=sys.stderr)
        return 1
    if answer.windows:
        sys.stdout.write(table(answer.windows))
    else:
        within = " in that range" if start or stop else ""
        print(f"no windows of application {answer.application_id}{within}")
    return 0
