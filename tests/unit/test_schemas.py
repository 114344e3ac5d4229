"""The committed schemas in docs/schemas/ are what the worker's types generate."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from stream_app.domain.stats import WindowStats, encode_window_stats
from stream_app.settings import Settings
from stream_app.tools.schema import RECORDS, RULES_LINK, asyncapi, files, json_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMAS = DOCS / "schemas"
LIFECYCLE = Path(__file__).resolve().parents[1] / "data" / "lifecycle.jsonl"


@pytest.mark.parametrize("name", sorted(files(Settings.from_env({}))))
def test_committed_file_is_up_to_date(name: str) -> None:
    generated = files(Settings.from_env({}))[name]
    committed = SCHEMAS / name
    assert committed.exists(), f"{committed} missing: run `stream-app schema --out docs/schemas`"
    assert committed.read_text() == generated, (
        f"{committed} is stale: run `stream-app schema --out docs/schemas` with no "
        "STREAM_APP_* topic variables set"
    )


def test_every_schema_links_to_the_rules_it_cannot_express() -> None:
    anchor = RULES_LINK.split("#", 1)[1]
    contract = (DOCS / "contract.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("# ").lower()).replace(" ", "-")
        for line in contract.splitlines()
        if line.startswith("## ")
    }
    assert anchor in headings
    for name in RECORDS:
        assert json_schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert RULES_LINK in json_schema(name)["description"]


def test_asyncapi_names_the_configured_topics() -> None:
    settings = Settings.from_env({"STREAM_APP_INPUT_TOPIC": "in", "STREAM_APP_DLQ_TOPIC": "dead",
                                  "STREAM_APP_STATS_TOPIC": "stats-eu"})  # fmt: skip
    document = asyncapi(settings)
    assert document["asyncapi"].startswith("3.")
    addresses = {name: channel["address"] for name, channel in document["channels"].items()}
    assert addresses == {
        "events": "in",
        "sessions": "customer-sessions",
        "transitions": "customer-session-transitions",
        "deadLetters": "dead",
        "stats": "stats-eu",
    }
    policy = document["channels"]["sessions"]["bindings"]["kafka"]["topicConfiguration"]
    assert policy == {"cleanup.policy": ["compact"]}
    stats = document["components"]["messages"]["window-stats"]
    assert stats["payload"]["schema"] == {"$ref": "#/components/schemas/WindowStats"}
    assert stats["bindings"]["kafka"]["key"]["description"] == "UTF-8: applicationId"
    assert document["operations"]["sendStats"]["action"] == "send"


def test_asyncapi_leaves_out_the_stats_topic_when_statistics_are_off() -> None:
    document = asyncapi(Settings.from_env({"STREAM_APP_STATS": "false"}))
    assert set(document["channels"]) == {"events", "sessions", "transitions", "deadLetters"}
    assert "window-stats" not in document["components"]["messages"]
    assert "WindowStats" not in document["components"]["schemas"]
    assert "sendStats" not in document["operations"]


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names[type(value)]


def test_the_window_stats_schema_describes_what_the_worker_writes() -> None:
    # Sums are exact decimals written as JSON numbers, not as the strings msgspec's own schema
    # of a Decimal would say.
    stats = WindowStats(
        application_id=7, window_start=datetime(2026, 11, 25, 10, tzinfo=UTC),
        window_end=datetime(2026, 11, 25, 10, 1, tzinfo=UTC), closed=True, sessions_created=2,
        sessions_closed=1, sessions_cancelled=0, sessions_partially_returned=1,
        revenue_closed=Decimal("10.50"), returned_value=Decimal("2.25"),
        abandoned_value=Decimal(0), coupons_applied=1, events_applied=9,
    )  # fmt: skip
    record = json.loads(encode_window_stats(stats))
    definition = json_schema("window-stats")["$defs"]["WindowStats"]
    assert set(definition["required"]) == set(record)
    assert set(definition["properties"]) == set(record)
    for name, value in record.items():
        expected = definition["properties"][name]["type"]
        # A whole-number sum (0) is written without a fraction: still a JSON number.
        allowed = {expected, "integer"} if expected == "number" else {expected}
        assert _json_type(value) in allowed, name
    for name in ("revenueClosed", "returnedValue", "abandonedValue"):
        assert definition["properties"][name] == {"type": "number"}


def test_the_event_schema_describes_the_documented_example() -> None:
    # The schema's required fields and types hold for every event of the worked example.
    schema = json_schema("event")
    defs = schema["$defs"]
    for line in LIFECYCLE.read_bytes().splitlines():
        event = msgspec.json.decode(line)
        definition = defs["UpdateEvent" if event["type"] == "update" else "ReturnEvent"]
        assert set(definition["required"]) <= set(event)
        assert json.dumps(definition["properties"]["type"]["enum"]) == json.dumps([event["type"]])
