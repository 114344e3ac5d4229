"""Deterministic event streams for the demo, the benchmarks and the failure drills.

generate_workload yields a realistic stream: every session follows a valid lifecycle (created
open with a cart, updated, closed, partially returned, sometimes cancelled), sessions are
interleaved, profiles are shared by several sessions and some sessions stay anonymous. A small
share of records are bad (each one rejected by the worker, see _BAD_KINDS) or exact duplicates
of an earlier record (skipped). Record keys are always the integrationId: a record without a
key is re-keyed by the worker, which would reorder it relative to its session's other events.

hostile_records yields records no producer should send, to check the worker survives them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec

_encode = msgspec.json.encode
_T = TypeVar("_T")
_EPOCH = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
_PLUS_ONE = timezone(timedelta(hours=1))
_APPLICATIONS = (322, 322, 322, 1001)
_CATEGORIES = ("shoes", "shirts", "bags", "hats", "socks")
_CHANNELS = ("web", "app", "store")
_COUPONS = ("XMAS-2021", "WELCOME10", "SPRING", "VIP-5")


def _catalog(rng: random.Random) -> list[dict[str, Any]]:
    """Cart items of 200 products, all but the quantity; some without name, some with extras."""
    products = []
    for n in range(200):
        item: dict[str, Any] = {"sku": f"SKU-{n}", "price": round(rng.uniform(1, 200), 2)}
        if rng.random() < 0.7:
            item["name"] = f"Product {n}"
            item["category"] = rng.choice(_CATEGORIES)
        shipping = rng.choice((None, None, 4.99, 5.0))
        if shipping is not None:
            item["additionalCosts"] = {"shipping": {"price": shipping}}
        if rng.random() < 0.1:
            item["weight"] = round(rng.uniform(0.1, 5), 2)
            item["attributes"] = {"color": rng.choice(("red", "blue", "black"))}
        products.append(item)
    return products


@dataclass
class _Session:
    integration_id: str
    application_id: int
    profile_id: str
    planned: int  # good events still to produce
    clock: int  # seconds since _EPOCH of the latest event
    state: str | None = None
    remaining: list[int] = field(default_factory=list)  # units left per cart line
    sequence: int = 0
    bad: int = 0


class _Generator:
    """Builds the events of one workload; all randomness comes from one seeded Random."""

    def __init__(self, seed: int, profiles: int) -> None:
        self.rng = random.Random(seed)
        self.catalog = _catalog(self.rng)
        self.profiles = profiles

    def below(self, n: int) -> int:
        """A random int in [0, n); random.randrange is several times slower."""
        return int(self.rng.random() * n)

    def pick(self, options: Sequence[_T]) -> _T:
        """A random element; random.choice is several times slower."""
        return options[int(self.rng.random() * len(options))]

    def timestamp(self, session: _Session) -> datetime:
        session.clock += 1 + self.below(600)
        at = _EPOCH + timedelta(seconds=session.clock)
        roll = self.rng.random()
        if roll < 0.05:
            # A late-arriving event stamped earlier than the previous one: `updated` is a max.
            at -= timedelta(seconds=1 + self.below(900))
        return at.astimezone(_PLUS_ONE) if roll > 0.9 else at

    def envelope(self, session: _Session, kind: str, event_id: str | None = None) -> dict[str, Any]:
        if event_id is None:
            session.sequence += 1
            event_id = f"{session.integration_id}-{session.sequence}"
        return {
            "eventId": event_id,
            "type": kind,
            "integrationId": session.integration_id,
            "applicationId": session.application_id,
            "occurredAt": self.timestamp(session),
        }

    def cart(self, session: _Session) -> list[dict[str, Any]]:
        first = self.below(len(self.catalog) - 4)
        products = self.catalog[first : first + 1 + self.below(4)]
        items = [{**product, "quantity": 1 + self.below(3)} for product in products]
        if sum(item["quantity"] for item in items) < 2:
            # Two units at least, so a closed session can always take two returns.
            items[0]["quantity"] = 2
        session.remaining = [item["quantity"] for item in items]
        return items

    def profile(self) -> str:
        return f"customer-{self.below(self.profiles)}"

    def create(self, session: _Session) -> dict[str, Any]:
        rng = self.rng
        patch: dict[str, Any] = {
            "profileId": session.profile_id,
            "cartItems": self.cart(session),
            "identifiers": [f"10.0.{self.below(256)}.{self.below(256)}"],
            "attributes": {"channel": self.pick(_CHANNELS)},
        }
        if rng.random() < 0.3:
            patch["coupon"] = self.pick(_COUPONS)
        if session.planned == 1 and rng.random() < 0.5:
            patch["state"] = "closed"
            session.state = "closed"
        else:
            session.state = "open"
        return {**self.envelope(session, "update"), "session": patch}

    def update(self, session: _Session) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        patch: dict[str, Any]
        if roll < 0.45:
            patch = {"cartItems": self.cart(session)}
        elif roll < 0.6 and session.profile_id == "":
            # An anonymous visitor logs in.
            session.profile_id = self.profile()
            patch = {"profileId": session.profile_id}
        elif roll < 0.75:
            patch = {"coupon": self.pick((*_COUPONS, ""))}
        elif roll < 0.9:
            patch = {"attributes": {"channel": self.pick(_CHANNELS), "promo": None}}
        else:
            patch = {"identifiers": ["10.0.0.1", "10.0.0.1", "device-7"], "referral": "FRIEND"}
        return {**self.envelope(session, "update"), "session": patch}

    def close(self, session: _Session) -> dict[str, Any]:
        session.state = "closed"
        patch: dict[str, Any] = {"state": "closed"}
        if self.rng.random() < 0.5:
            patch["discounts"] = {"10% off": round(self.rng.uniform(1, 20), 2)}
        return {**self.envelope(session, "update"), "session": patch}

    def cancel(self, session: _Session) -> dict[str, Any]:
        session.state = "cancelled"
        return {**self.envelope(session, "update"), "session": {"state": "cancelled"}}

    def give_back(self, session: _Session) -> dict[str, Any]:
        """A partial return of one unit of a line, or of a whole line on the last event."""
        rng = self.rng
        lines = [position for position, left in enumerate(session.remaining) if left]
        position = self.pick(lines)
        line: dict[str, Any] = {"position": position}
        if session.planned == 1 and rng.random() < 0.5:
            session.remaining[position] = 0
        else:
            line["quantity"] = 1
            session.remaining[position] -= 1
        session.state = "partially_returned"
        return {**self.envelope(session, "return"), "returnedCartItems": [line]}

    def next_event(self, session: _Session) -> dict[str, Any]:
        """The session's next valid event, planned so its lifecycle ends with its last one."""
        event = self._plan(session)
        session.planned -= 1
        return event

    def _plan(self, session: _Session) -> dict[str, Any]:
        left = session.planned
        roll = self.rng.random()
        match session.state:
            case None:
                return self.create(session)
            case "open" if left >= 4 or (left == 1 and roll < 0.3):
                return self.update(session)
            case "open" if left == 1 and roll < 0.5:
                return self.cancel(session)
            case "open":
                # Closing with at most two events left: the cart always has two units to return.
                return self.close(session)
            case _ if left == 1 and roll < 0.4:
                return self.cancel(session)
            case _:
                return self.give_back(session)

    def bad_event(self, session: _Session, other: _Session) -> tuple[str, dict[str, Any] | bytes]:
        """A record the worker must reject, as (key, event or raw bytes); state stays as it is."""
        session.bad += 1
        event = self.envelope(session, "update", f"{session.integration_id}-bad-{session.bad}")
        key = session.integration_id
        kind = self.pick(_BAD_KINDS)
        match kind:
            case "malformed_json":
                return key, _encode({**event, "session": {}})[: 1 + self.below(40)]
            case "invalid_event":
                return key, self._invalid(event)
            case "key_mismatch":
                wrong = other.integration_id if other is not session else f"{key}-other"
                return wrong, {**event, "session": {}}
        match session.state:
            case None:
                # session_not_found
                return key, {**event, "type": "return", "returnedCartItems": [{"position": 0}]}
            case "open":
                # invalid_transition: only a closed session takes returns
                return key, {**event, "type": "return", "returnedCartItems": [{"position": 0}]}
            case "cancelled":
                return key, {**event, "session": {"state": "cancelled"}}  # invalid_transition
        if kind == "session_locked":
            return key, {**event, "session": {"coupon": "LATE"}}
        if kind == "invalid_return":
            lines = [{"position": len(session.remaining) + 5}]
            return key, {**event, "type": "return", "returnedCartItems": lines}
        return key, {**event, "session": {"state": "closed"}}  # invalid_transition

    def _invalid(self, event: dict[str, Any]) -> dict[str, Any]:
        match self.below(6):
            case 0:
                return {**event, "applicationId": 0}
            case 1:
                return {**event, "session": {"state": "frozen"}}
            case 2:
                return {**event, "occurredAt": event["occurredAt"].replace(tzinfo=None)}
            case 3:
                item = {"sku": "SKU-1", "quantity": 0, "price": 1.0}
                return {**event, "session": {"cartItems": [item]}}
            case 4:
                return {**event, "session": {"coupon": "C" * 101}}
            case _:
                return {key: value for key, value in event.items() if key != "eventId"}


_BAD_KINDS = (
    "malformed_json",
    "invalid_event",
    "key_mismatch",
    "session_locked",
    "invalid_return",
    "invalid_transition",
)
_GOOD, _BAD, _DUPLICATE = 0, 1, 2
_RECENT_RECORDS = 256


def generate_workload(
    seed: int,
    sessions: int,
    events: int,
    bad_ratio: float = 0.01,
    duplicate_ratio: float = 0.01,
    profiles: int | None = None,
) -> Iterator[tuple[str | None, bytes]]:
    """Yield `events` (key, value) records over `sessions` sessions, the same for the same seed.

    Exactly round(events x bad_ratio) records are bad and round(events x duplicate_ratio) are
    duplicates; every other record applies. `profiles` (default sessions // 3) profileIds are
    shared among the sessions that are not anonymous.
    """
    bad = round(events * bad_ratio)
    duplicates = round(events * duplicate_ratio)
    good = events - bad - duplicates
    if good < 1:
        raise ValueError("bad_ratio + duplicate_ratio leave no room for valid events")
    generator = _Generator(seed, profiles if profiles is not None else max(1, sessions // 3))
    rng = generator.rng
    population = _sessions(generator, min(max(sessions, 1), good), good)
    active = list(population)
    kinds = [_GOOD] * good + [_BAD] * bad + [_DUPLICATE] * duplicates
    rng.shuffle(kinds)
    # A duplicate needs an earlier record to repeat.
    first_good = kinds.index(_GOOD)
    kinds[0], kinds[first_good] = kinds[first_good], kinds[0]
    recent: list[tuple[str | None, bytes]] = []
    for kind in kinds:
        if kind == _DUPLICATE:
            yield generator.pick(recent)
            continue
        if kind == _BAD:
            key, value = generator.bad_event(generator.pick(population), generator.pick(population))
            yield key, value if isinstance(value, bytes) else _encode(value)
            continue
        index = generator.below(len(active))
        session = active[index]
        record = (session.integration_id, _encode(generator.next_event(session)))
        if session.planned == 0:
            active[index] = active[-1]
            active.pop()
        if len(recent) < _RECENT_RECORDS:
            recent.append(record)
        else:
            recent[generator.below(_RECENT_RECORDS)] = record
        yield record


def _sessions(generator: _Generator, count: int, events: int) -> list[_Session]:
    rng = generator.rng
    population = [
        _Session(
            integration_id=f"S{n:07d}-{rng.randrange(16**6):06x}",
            application_id=generator.pick(_APPLICATIONS),
            profile_id="" if rng.random() < 0.3 else generator.profile(),
            planned=1,
            clock=rng.randrange(86_400),
        )
        for n in range(count)
    ]
    for _ in range(events - count):
        population[generator.below(count)].planned += 1
    return population


def hostile_records(seed: int, n: int) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield n (key, value) records no producer should send, cycling through HOSTILE_KINDS.

    Big values are ASCII and under 1 MiB, so that their dead-letter record (which carries the
    value as text, or as base64 when it is not UTF-8) still fits Kafka's default message size.
    """
    rng = random.Random(seed)
    kinds = list(HOSTILE_KINDS.values())
    for index in range(n):
        integration_id = f"H{seed}-{index}"
        yield kinds[index % len(kinds)](rng, integration_id)


def _valid(integration_id: str, **changes: Any) -> bytes:
    return _encode(
        {
            "eventId": f"{integration_id}-e",
            "type": "update",
            "integrationId": integration_id,
            "applicationId": 322,
            "occurredAt": "2026-11-25T10:00:00Z",
            "session": {"cartItems": [{"sku": "SKU-1", "quantity": 1, "price": 9.99}]},
            **changes,
        }
    )


def _price(integration_id: str, literal: bytes) -> bytes:
    return _valid(integration_id).replace(b'"price":9.99', b'"price":' + literal)


_Hostile = Callable[[random.Random, str], tuple[bytes | None, bytes]]

HOSTILE_KINDS: dict[str, _Hostile] = {
    "random_bytes": lambda rng, iid: (iid.encode(), rng.randbytes(rng.randint(0, 200))),
    "invalid_utf8": lambda rng, iid: (iid.encode(), b'{"eventId":"\xff\xfe\xc0\x80"}'),
    "one_megabyte": lambda rng, iid: (iid.encode(), b'{"a":"' + b"x" * 1_000_000),
    "deep_object": lambda rng, iid: (iid.encode(), b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    "deep_array": lambda rng, iid: (iid.encode(), b"[" * 10_000 + b"]" * 10_000),
    "wrong_type": lambda rng, iid: (iid.encode(), _valid(iid, applicationId="322")),
    "session_not_object": lambda rng, iid: (iid.encode(), _valid(iid, session=[])),
    "nan": lambda rng, iid: (iid.encode(), _price(iid, b"NaN")),
    "infinity": lambda rng, iid: (iid.encode(), _price(iid, b"Infinity")),
    "huge_float": lambda rng, iid: (iid.encode(), _price(iid, b"1e400")),
    "huge_int": lambda rng, iid: (iid.encode(), _valid(iid, applicationId=10**30)),
    "missing_fields": lambda rng, iid: (iid.encode(), b'{"type":"update","session":{}}'),
    "not_an_object": lambda rng, iid: (iid.encode(), b'"just a string"'),
    "empty": lambda rng, iid: (iid.encode(), b""),
    "null_key": lambda rng, iid: (None, _valid(iid)),
    "key_mismatch": lambda rng, iid: (b"not-" + iid.encode(), _valid(iid)),
    "non_utf8_key": lambda rng, iid: (b"\xff\xfe", _valid(iid)),
}
