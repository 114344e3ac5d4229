"""`stream-app stats`: asks a worker's GET /stats and prints the windows (a local HTTP server
stands in for the worker)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from stream_app.cli import main
from stream_app.domain.stats import WindowStats, encode_window_stats
from stream_app.tools.stats import query_bound, stats_url, table

JSON = "application/json"


@dataclass
class Seen:
    """A request the stand-in worker received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Worker:
    """What the stand-in answers next, and what it was asked."""

    url: str
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    requests: list[Seen] = field(default_factory=list)

    def answer(self, status: int, body: bytes, content_type: str = JSON) -> None:
        self.status, self.body, self.content_type = status, body, content_type


@pytest.fixture
def worker() -> Iterator[Worker]:
    state = Worker(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers)))
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(state.body)))
            if state.status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="stream-app"')
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the caller's shell holds: each test sets the token it means to.
    monkeypatch.delenv("STREAM_APP_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("STREAM_APP_HTTP_TOKEN_FILE", raising=False)


def window(start: str, closed: bool = True, **figures: object) -> WindowStats:
    begin = datetime.fromisoformat(start).replace(tzinfo=UTC)
    empty = WindowStats(
        application_id=42, window_start=begin, window_end=begin + timedelta(minutes=1),
        closed=closed, sessions_created=0, sessions_closed=0, sessions_cancelled=0,
        sessions_partially_returned=0, revenue_closed=Decimal(0), returned_value=Decimal(0),
        abandoned_value=Decimal(0), coupons_applied=0, events_applied=0,
    )  # fmt: skip
    return msgspec.structs.replace(empty, **figures)


WINDOWS = [
    window("2026-11-25T10:00:00", sessions_created=3, sessions_closed=1, sessions_cancelled=1,
           sessions_partially_returned=1, revenue_closed=Decimal("1234.50"),
           returned_value=Decimal("19.99"), abandoned_value=Decimal("5.1"), coupons_applied=2,
           events_applied=17),
    window("2026-11-25T10:01:00", closed=False, sessions_created=12, events_applied=3),
]  # fmt: skip


def body(windows: list[WindowStats], application_id: int = 42) -> bytes:
    return encode_window_stats({"applicationId": application_id, "windows": windows})


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["stats", *args])
    out, err = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    return code, out, err


def test_prints_the_windows_as_a_table(worker: Worker, capsys: pytest.CaptureFixture[str]) -> None:
    worker.answer(200, body(WINDOWS))

    code, out, err = run(["42", "--url", worker.url], capsys)

    assert (code, err) == (0, "")
    assert worker.requests[0].path == "/stats/42"
    assert worker.requests[0].query == {}
    header, first, second = out.splitlines()
    assert header.split() == [
        "start", "end", "window", "created", "closed", "cancelled", "partial", "revenue",
        "returned", "abandoned", "coupons", "events",
    ]  # fmt: skip
    assert first.split() == [
        "2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z", "closed", "3", "1", "1", "1",
        "1234.50", "19.99", "5.1", "2", "17",
    ]  # fmt: skip
    assert second.split() == [
        "2026-11-25T10:01:00Z", "2026-11-25T10:02:00Z", "open", "12", "0", "0", "0", "0", "0",
        "0", "0", "3",
    ]  # fmt: skip
    # Figures are right-aligned under their headers.
    for name in ("created", "revenue", "events"):
        end = header.index(name) + len(name)
        for row in (first, second):
            assert row[end - 1] != " ", name
            assert row[end : end + 1] in {"", " "}, name


def test_every_figure_of_a_window_has_a_column() -> None:
    figures = set(WindowStats.__struct_fields__) - {"application_id"}
    rendered = table([window("2026-11-25T10:00:00")]).splitlines()
    assert len(rendered[0].split()) == len(figures)


def test_sums_are_shown_exactly_as_the_worker_added_them() -> None:
    big = window("2026-11-25T10:00:00", revenue_closed=Decimal("1E+7"),
                 returned_value=Decimal("0.10"))  # fmt: skip
    row = table([big]).splitlines()[1].split()
    assert row[7:9] == ["10000000", "0.10"]


def test_sends_the_configured_token_and_the_range(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_APP_HTTP_TOKEN", "s3cret")
    worker.answer(200, body(WINDOWS[:1]))

    code, _, _ = run(["42", "--url", worker.url + "/", "--from", "2026-11-25T10:00:00+01:00",
                      "--to", "1764064800"], capsys)  # fmt: skip

    assert code == 0
    (seen,) = worker.requests
    assert seen.headers["Authorization"] == "Bearer s3cret"
    assert seen.path == "/stats/42"
    assert seen.query == {"from": ["2026-11-25T10:00:00+01:00"], "to": ["1764064800"]}


def test_the_token_can_come_from_a_file(
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    monkeypatch.setenv("STREAM_APP_HTTP_TOKEN_FILE", str(token))
    worker.answer(200, body([]))

    code, out, _ = run(["42", "--url", worker.url], capsys)

    assert code == 0
    assert worker.requests[0].headers["Authorization"] == "Bearer from-a-file"
    assert out == "no windows of application 42\n"


def test_no_token_no_authorization_header(
    worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    worker.answer(200, body([]))

    code, out, _ = run(["42", "--url", worker.url, "--from", "2026-11-25"], capsys)

    assert code == 0
    assert "Authorization" not in worker.requests[0].headers
    assert out == "no windows of application 42 in that range\n"


def test_asks_the_local_worker_on_the_configured_port_by_default(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_APP_WEB_PORT", worker.url.rsplit(":", 1)[1])
    worker.answer(200, body(WINDOWS))

    code, out, _ = run(["42"], capsys)

    assert code == 0
    assert worker.requests[0].path == "/stats/42"
    assert len(out.splitlines()) == 3


def test_json_prints_the_answer_as_it_came(
    worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = body(WINDOWS)
    worker.answer(200, raw)

    code, out, _ = run(["42", "--url", worker.url, "--json"], capsys)

    assert code == 0
    assert out == raw.decode() + "\n"
    document = json.loads(out)
    assert document["windows"][0]["revenueClosed"] == 1234.5


def test_a_duration_is_sent_as_epoch_seconds_before_now() -> None:
    now = 1_764_000_000.0
    assert query_bound("2h", now) == str(1_764_000_000 - 7200)
    assert query_bound("30m", now) == str(1_764_000_000 - 1800)
    assert query_bound("1.5d", now) == str(1_764_000_000 - 129_600)
    # Anything else is the worker's to read.
    assert query_bound("1764000000", now) == "1764000000"
    assert query_bound(" 2026-11-25T10:00:00Z ", now) == "2026-11-25T10:00:00Z"


def test_the_application_and_times_are_quoted_into_the_url() -> None:
    url = stats_url("http://w:6066/", "4 2/x", "2026-11-25T10:00:00+01:00", None)
    assert url == "http://w:6066/stats/4%202%2Fx?from=2026-11-25T10%3A00%3A00%2B01%3A00"


def test_a_missing_token_is_explained(worker: Worker, capsys: pytest.CaptureFixture[str]) -> None:
    worker.answer(401, b'{"error":"a valid bearer token is required"}')

    code, out, err = run(["42", "--url", worker.url], capsys)

    assert (code, out) == (1, "")
    assert "requires a bearer token (HTTP 401)" in err
    assert "STREAM_APP_HTTP_TOKEN" in err


def test_a_refused_token_is_explained_and_not_shown(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_APP_HTTP_TOKEN", "wrong-token")
    worker.answer(401, b'{"error":"a valid bearer token is required"}')

    code, out, err = run(["42", "--url", worker.url], capsys)

    assert (code, out) == (1, "")
    assert "refused the bearer token" in err
    assert "wrong-token" not in err


def test_a_bad_request_shows_the_workers_reason(
    worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "from='soon': expected an ISO 8601 time or epoch seconds"
    worker.answer(400, json.dumps({"error": reason}).encode())

    code, out, err = run(["42", "--url", worker.url, "--from", "soon"], capsys)

    assert (code, out) == (1, "")
    assert "HTTP 400" in err
    assert reason in err


def test_no_statistics_route_is_explained(
    worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    worker.answer(404, b"404: Not Found", content_type="text/plain")

    code, out, err = run(["42", "--url", worker.url], capsys)

    assert (code, out) == (1, "")
    assert "no statistics at" in err
    assert "HTTP 404" in err
    assert "STREAM_APP_STATS" in err


def test_a_worker_that_is_not_ready_is_reported(
    worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    worker.answer(503, b'{"error":"rebalancing"}')

    code, _, err = run(["42", "--url", worker.url, "--json"], capsys)

    assert code == 1
    assert "answered HTTP 503: rebalancing" in err


def test_an_answer_that_is_not_statistics_is_an_error(
    worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    worker.answer(200, b'{"status":"ok"}')

    code, out, err = run(["42", "--url", worker.url], capsys)

    assert (code, out) == (1, "")
    assert "is not statistics" in err


def test_an_unreachable_worker_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    # A port nothing listens on: bound, then closed.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    code, out, err = run(["42", "--url", f"http://127.0.0.1:{port}"], capsys)

    assert (code, out) == (1, "")
    assert f"cannot reach the worker at http://127.0.0.1:{port}/stats/42" in err


def test_an_answer_that_is_not_http_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def garble() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"not http\r\n\r\n")

        thread = threading.Thread(target=garble, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        code, out, err = run(["42", "--url", f"http://127.0.0.1:{port}"], capsys)
        thread.join()

    assert (code, out) == (1, "")
    assert "no HTTP answer from" in err


@pytest.mark.parametrize(
    "args",
    [[], ["42", "--url", "file:///etc/passwd"], ["42", "--timeout", "0"], ["42", "--since", "1h"]],
)
def test_bad_options_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(args, capsys)
    assert (code, out) == (2, "")
    assert "usage: stream-app stats" in err


def test_help_explains_the_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert out.startswith("usage: stream-app stats")
    for field_name in WindowStats.__struct_encode_fields__:
        if field_name != "applicationId":
            assert field_name in out, field_name
