"""The session job in Quix Streams, for `make bench --compare-quix PYTHON`: a reference point.

    PYTHON dev/bench/quix_job.py --bootstrap HOST:PORT --input T --output T --group G
        [--guarantee at-least-once|exactly-once] --state-dir DIR

Run by a Python that has quixstreams (it imports nothing from this repository). With the
library's defaults (commit every 5 s, RocksDB state with a changelog topic), per keyed event:
parse the JSON, read the session from the state, apply the event (the first one creates the
session; a state change must be one of the transitions the contract allows; cart items, coupon,
referral and attributes replace the stored ones; the total is recomputed), store it, and emit the
session with the event's `eventId` (so the benchmark can time it as it times the raw loop). It
does less than the worker on purpose, as a job written for the comparison would: no schema
validation, no dead letters, no duplicate detection, no transitions topic, no firstSession
round trip, no re-keying of keyless records (they are dropped), no retention.

Prints `ready` once it has its partitions.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from quixstreams import Application, State  # type: ignore[import-not-found]

ALLOWED = {
    ("open", "closed"),
    ("open", "cancelled"),
    ("closed", "cancelled"),
    ("closed", "partially_returned"),
    ("partially_returned", "cancelled"),
}


class _ReadyApplication(Application):  # type: ignore[misc]
    _announced = False

    def _on_assign(self, consumer: Any, partitions: Any) -> None:
        super()._on_assign(consumer, partitions)
        if not self._announced:
            print("ready", flush=True)
            self._announced = True


def apply(value: bytes, state: State) -> dict[str, Any] | None:
    """The event applied to its session; the session to emit (None: nothing to emit)."""
    try:
        event = json.loads(value)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("integrationId"), str):
        return None
    session: dict[str, Any] | None = state.get("session")
    if session is None:
        session = {
            "integrationId": event["integrationId"],
            "applicationId": event.get("applicationId"),
            "profileId": event.get("profileId", ""),
            "created": event.get("occurredAt"),
            "state": "open",
            "cartItems": [],
            "coupon": "",
            "referral": "",
            "attributes": {},
        }
    wanted = event.get("state")
    if wanted is not None and wanted != session["state"]:
        if (session["state"], wanted) not in ALLOWED:
            return None
        session["state"] = wanted
    for field in ("cartItems", "coupon", "referral", "attributes", "identifiers"):
        if field in event:
            session[field] = event[field]
    session["total"] = round(
        sum(
            float(item.get("price", 0)) * float(item.get("quantity", 0))
            for item in session["cartItems"]
            if isinstance(item, dict)
        ),
        2,
    )
    session["updated"] = event.get("occurredAt")
    state.set("session", session)
    return {**session, "eventId": event.get("eventId")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--guarantee", default="at-least-once")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    app = _ReadyApplication(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(args.output, value_serializer="json", key_serializer="bytes")
    frame = app.dataframe(source)
    frame = frame.filter(lambda _value, key, _timestamp, _headers: key is not None, metadata=True)
    frame = frame.apply(apply, stateful=True)
    frame = frame.filter(lambda value: value is not None)
    frame.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
