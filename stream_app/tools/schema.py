"""`stream-app schema`: JSON Schemas of the records and an AsyncAPI document of the topics."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from stream_app import __version__
from stream_app.domain import CustomerSession, Event, Rejection, Transition
from stream_app.domain.stats import WindowStats
from stream_app.settings import Settings
from stream_app.tools import load_settings

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Where the rules that no schema expresses are listed, relative to docs/schemas/.
RULES_LINK = "../contract.md#9-rules-the-schemas-do-not-express"

#: Each record type by the name of its schema file (`<name>.schema.json`).
RECORDS: dict[str, tuple[Any, str]] = {
    "event": (Event, "An input event (contract section 2), keyed by integrationId."),
    "customer-session": (CustomerSession, "A CustomerSession snapshot (contract section 3)."),
    "transition": (Transition, "A session state transition (contract section 3)."),
    "rejection": (Rejection, "A dead-letter record (contract section 3)."),
    "window-stats": (
        WindowStats,
        "The statistics of one application's window (contract section 11): a closed window on "
        "the stats topic, keyed by applicationId; GET /stats answers a list of them, open "
        "windows included.",
    ),
}

#: What the worker writes for field types msgspec describes otherwise: exact decimal sums as
#: JSON numbers (`encode_window_stats`), where msgspec's schema says a string.
WRITTEN_AS: dict[Any, dict[str, str]] = {Decimal: {"type": "number"}}

DESCRIPTION = f"""\
Print the JSON Schema (2020-12) of one record type, generated from the worker's own types:
{", ".join(RECORDS)}. With --asyncapi, print an AsyncAPI 3 document of the public topics
instead (the stats topic only when STREAM_APP_STATS is true), with their names from the
STREAM_APP_* settings, their keys, values and cleanup policies. With --out DIR, write every
schema and asyncapi.json into DIR (the files in docs/schemas/ are written this way, with the
default settings).

Some rules cannot be written in JSON Schema (the key must equal integrationId, the state
machine, returns against the cart, ...); docs/contract.md lists them, and every schema's
description links there.
"""


def _describe(description: str) -> str:
    return f"{description} Rules this schema does not express: {RULES_LINK}"


def _as_written(definitions: dict[str, Any], types: Iterable[Any]) -> None:
    """Describe the fields of the structs among `types` whose type the worker writes otherwise
    than msgspec's schema says (`WRITTEN_AS`), in their `definitions`."""
    for record in types:
        if not (isinstance(record, type) and issubclass(record, msgspec.Struct)):
            continue
        properties = definitions[record.__name__]["properties"]
        for field in msgspec.structs.fields(record):
            written = WRITTEN_AS.get(field.type)
            if written is not None:
                properties[field.encode_name] = dict(written)


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema 2020-12 document of one record type."""
    record, description = RECORDS[name]
    schema = msgspec.json.schema(record)
    _as_written(schema.get("$defs", {}), [record])
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": name,
        "description": _describe(description),
        **schema,
    }


def asyncapi(settings: Settings) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the input, snapshot, transition and dead-letter topics, and
    of the stats topic when statistics are on."""
    topics = [
        ("events", settings.input_topic, "event", "delete", "integrationId", "receive"),
        ("sessions", settings.output_topic, "customer-session", "compact", "integrationId", "send"),
        ("transitions", settings.transitions_topic, "transition", "delete", "integrationId",
         "send"),
        ("deadLetters", settings.dlq_topic, "rejection", "delete", "the rejected record's key",
         "send"),
    ]  # fmt: skip
    if settings.stats:
        topics.append(
            ("stats", settings.stats_topic, "window-stats", "delete", "applicationId", "send")
        )
    types = [RECORDS[name][0] for _, _, name, *_ in topics]
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    _as_written(components, types)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for (channel, topic, name, cleanup, key, action), payload in zip(topics, schemas, strict=True):
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "summary": RECORDS[name][1],
            "description": _describe(RECORDS[name][1]),
            "payload": {"schemaFormat": "application/schema+json;version=draft-2020-12",
                        "schema": payload},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": f"UTF-8: {key}"},
                    "bindingVersion": "0.5.0",
                }
            },
        }  # fmt: skip
        channels[channel] = {
            "address": topic,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "topicConfiguration": {"cleanup.policy": [cleanup]},
                    "bindingVersion": "0.5.0",
                }
            },
        }
        operations[f"{action}{channel[0].upper()}{channel[1:]}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "stream-app customer sessions",
            "version": __version__,
            "description": "Topics of a stream-app worker: it receives events and sends "
            "snapshots, transitions, dead letters and (unless STREAM_APP_STATS is false) the "
            "statistics of closed windows. Producers of the input topic key each "
            "record by integrationId with Kafka's default (murmur2) partitioner; consumers of "
            "the outputs read with isolation.level=read_committed. Rules the schemas do not "
            f"express: {RULES_LINK}",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }


def render(document: dict[str, Any]) -> str:
    """A document as the JSON text written to docs/schemas/."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def files(settings: Settings) -> dict[str, str]:
    """Every generated file by name: one schema per record type, and asyncapi.json."""
    found = {f"{name}.schema.json": render(json_schema(name)) for name in RECORDS}
    found["asyncapi.json"] = render(asyncapi(settings))
    return found


def main(argv: list[str]) -> int:
    """Run `stream-app schema`."""
    parser = argparse.ArgumentParser(
        prog="stream-app schema",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("record", nargs="?", choices=list(RECORDS), default="event",
                        help="record type (default event)")  # fmt: skip
    parser.add_argument("--asyncapi", action="store_true", help="print the AsyncAPI document")
    parser.add_argument("--out", metavar="DIR", type=Path, help="write every file into DIR")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in files(load_settings()).items():
            (args.out / name).write_text(text)
            print(args.out / name)
        return 0
    document = asyncapi(load_settings()) if args.asyncapi else json_schema(args.record)
    sys.stdout.write(render(document))
    return 0
