"""HTTP views on the worker's web port: health, one session, metrics."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.web import Request, Response, View

from stream_app.domain import encode_json
from stream_app.worker.metrics import Metrics
from stream_app.worker.sessions import SessionProcessor

JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def register_views(
    app: faust.App, table: Any, sessions: SessionProcessor, metrics: Metrics
) -> None:
    """Attach the worker's HTTP views to `app`."""

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        consuming = (
            app.consumer is not None
            and not app.rebalancing
            and cast(TableManager, app.tables).recovery.completed.is_set()
        )
        status = 200 if consuming else 503
        body = b'{"status":"ok"}' if consuming else b'{"status":"starting"}'
        return web.bytes(body, content_type=JSON, status=status)

    @app.page("/sessions/{integration_id}")
    @app.table_route(table=table, match_info="integration_id")
    async def session(web: View, request: Request, integration_id: str) -> Response:
        snapshot = sessions.lookup(integration_id)
        if snapshot is None:
            body = encode_json({"error": f"session {integration_id!r} not found"})
            return web.bytes(body, content_type=JSON, status=404)
        return web.bytes(encode_json(snapshot), content_type=JSON)

    @app.page("/metrics")
    async def prometheus(web: View, request: Request) -> Response:
        return web.bytes(metrics.render().encode(), content_type=PROMETHEUS_TEXT)
