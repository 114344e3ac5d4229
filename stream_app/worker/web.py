"""HTTP views on the worker's web port: liveness, readiness, one session, partitions, metrics."""

from __future__ import annotations

import hmac
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.web import Request, Response, View

from stream_app.domain import encode_json
from stream_app.domain.stats import encode_window_stats as encode_stats
from stream_app.kafka_security import Secret
from stream_app.worker.metrics import Metrics
from stream_app.worker.sessions import SessionProcessor
from stream_app.worker.stats import StatsCombiner, StatsQueryError, stats_query

JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def alive(app: faust.App) -> bool:
    """The process runs and neither the app nor an agent has crashed (restoring counts)."""
    services = [app, *app.agents.values()]
    return not any(service.crashed or service.should_stop for service in services)


def readiness(app: faust.App) -> dict[str, Any]:
    """Whether the worker consumes with its tables restored, and how far a restore has got."""
    recovery = cast(TableManager, app.tables).recovery
    restored = recovery.completed.is_set()
    ready = app.consumer is not None and not app.rebalancing and restored
    if ready:
        return {"status": "ok"}
    return {
        "status": "starting",
        "rebalancing": bool(app.rebalancing),
        "restoring": not restored,
        "restoreRemaining": {
            "active": int(recovery.active_remaining_total()),
            "standby": int(recovery.standby_remaining_total()),
        },
    }


def authorized(request: Request, token: Secret | None) -> bool:
    """Whether the request carries the bearer token (always, when no token is configured)."""
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.reveal().encode()
    )


def register_views(
    app: faust.App,
    table: Any,
    sessions: SessionProcessor,
    metrics: Metrics,
    http_token: Secret | None = None,
    stats_table: Any = None,
    stats: StatsCombiner | None = None,
) -> None:
    """Attach the worker's HTTP views to `app`."""

    async def guarded(web: View, request: Request, routed: Any, key: str) -> Response:
        """A routed view behind the bearer token, never cached on the way."""
        # Checked here and again on the owner: Faust forwards the request's headers.
        if not authorized(request, http_token):
            response = web.bytes(
                b'{"error":"a valid bearer token is required"}', content_type=JSON, status=401
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="stream-app"'
        else:
            response = await routed(web, request, key)
        # Personal data (sessions) and business figures (statistics).
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.page("/livez")
    async def livez(web: View, request: Request) -> Response:
        ok = alive(app)
        body = b'{"status":"alive"}' if ok else b'{"status":"stopping"}'
        return web.bytes(body, content_type=JSON, status=200 if ok else 503)

    def ready(web: View) -> Response:
        state = readiness(app)
        status = 200 if state["status"] == "ok" else 503
        return web.bytes(encode_json(state), content_type=JSON, status=status)

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        return ready(web)

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        # The contract's name for readiness.
        return ready(web)

    async def owned_session(web: View, request: Request, integration_id: str) -> Response:
        snapshot = sessions.lookup(integration_id)
        if snapshot is None:
            body = encode_json({"error": f"session {integration_id!r} not found"})
            return web.bytes(body, content_type=JSON, status=404)
        return web.bytes(encode_json(snapshot), content_type=JSON)

    # Answered by the worker that owns the key's partition; others forward the request.
    routed: Any = app.table_route(table=table, match_info="integration_id")(owned_session)

    @app.page("/sessions/{integration_id}")
    async def session(web: View, request: Request, integration_id: str) -> Response:
        return await guarded(web, request, routed, integration_id)

    if stats is not None and stats_table is not None:
        combiner = stats

        async def owned_stats(web: View, request: Request, application_id: str) -> Response:
            try:
                query = stats_query(application_id, request.query.get("from"),
                                    request.query.get("to"))  # fmt: skip
            except StatsQueryError as exc:
                return web.bytes(encode_json({"error": str(exc)}), content_type=JSON, status=400)
            windows = combiner.windows(*query)
            body = {"applicationId": query[0], "windows": windows}
            return web.bytes(encode_stats(body), content_type=JSON)

        # The windows of an application live in the stats table partition its key hashes to.
        routed_stats: Any = app.table_route(table=stats_table, match_info="application_id")(
            owned_stats
        )

        @app.page("/stats/{application_id}")
        async def stats_view(web: View, request: Request, application_id: str) -> Response:
            return await guarded(web, request, routed_stats, application_id)

    @app.page("/partitions")
    async def partitions(web: View, request: Request) -> Response:
        assignor = app.assignor
        body = {
            "active": _by_topic(assignor.assigned_actives()),
            "standby": _by_topic(assignor.assigned_standbys()),
        }
        return web.bytes(encode_json(body), content_type=JSON)

    @app.page("/metrics")
    async def prometheus(web: View, request: Request) -> Response:
        return web.bytes(metrics.render().encode(), content_type=PROMETHEUS_TEXT)


def _by_topic(tps: Any) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for tp in tps:
        found.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(partitions) for topic, partitions in sorted(found.items())}
