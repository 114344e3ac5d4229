"""The committed schemas in docs/schemas/ are what the worker's types generate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

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
    settings = Settings.from_env({"STREAM_APP_INPUT_TOPIC": "in", "STREAM_APP_DLQ_TOPIC": "dead"})
    document = asyncapi(settings)
    assert document["asyncapi"].startswith("3.")
    addresses = {name: channel["address"] for name, channel in document["channels"].items()}
    assert addresses == {
        "events": "in",
        "sessions": "customer-sessions",
        "transitions": "customer-session-transitions",
        "deadLetters": "dead",
    }
    policy = document["channels"]["sessions"]["bindings"]["kafka"]["topicConfiguration"]
    assert policy == {"cleanup.policy": ["compact"]}


def test_the_event_schema_describes_the_documented_example() -> None:
    # The schema's required fields and types hold for every event of the worked example.
    schema = json_schema("event")
    defs = schema["$defs"]
    for line in LIFECYCLE.read_bytes().splitlines():
        event = msgspec.json.decode(line)
        definition = defs["UpdateEvent" if event["type"] == "update" else "ReturnEvent"]
        assert set(definition["required"]) <= set(event)
        assert json.dumps(definition["properties"]["type"]["enum"]) == json.dumps([event["type"]])
