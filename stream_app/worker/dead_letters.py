"""Dead letters: where a rejected record came from, and the guard that keeps one record from
stopping its partition.

A record's provenance is its own topic, partition, offset and key, except on the re-keyed topic,
where the worker itself moved an event that arrived without a key: there the `source-*` headers
it wrote name the original coordinates. Headers are read nowhere else (any producer can set them
on the input topic) and only when well-formed; anything else is ignored for provenance.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stream_app.domain import Rejected, RejectionSource, build_rejection, decode_key, encode_json
from stream_app.settings import OnProcessingError, Settings
from stream_app.worker.metrics import Metrics
from stream_app.worker.ports import Headers, Message, Outbox

log = logging.getLogger(__name__)

#: Headers that carry a re-keyed event's original coordinates, for its dead-letter record.
SOURCE_HEADERS = ("source-topic", "source-partition", "source-offset")
#: Header on a record `stream-app dlq replay` sent: the dead letter it re-drives.
REPLAY_HEADER = "stream-app-replay-of"
#: Header on a replayed record: how many times its original record has been replayed (1, 2, ...).
ATTEMPT_HEADER = "stream-app-replay-attempt"
#: Kafka's own rule for topic names (kafka.common.internals.Topic): 1-249 of these characters.
_TOPIC_NAME = re.compile(rb"[a-zA-Z0-9._-]{1,249}")
#: A partition or offset as the worker writes it: decimal digits, no sign, no spaces.
_NON_NEGATIVE = re.compile(rb"[0-9]{1,19}")
#: The longest exception text a `processing_error` dead letter carries.
MAX_ERROR_TEXT = 1000
#: Seconds between two logged tracebacks of failed records (the rest are counted).
ERROR_LOG_INTERVAL = 1.0


def source_headers(message: Message) -> Headers:
    """The headers a re-keyed event carries: where the user's producer put it."""
    return [
        ("source-topic", message.topic.encode()),
        ("source-partition", str(message.partition).encode()),
        ("source-offset", str(message.offset).encode()),
    ]


def original_source(message: Message, rekeyed_topic: str) -> RejectionSource:
    """Where the record was produced: its own coordinates, or a re-keyed event's original ones.

    Never raises: on the re-keyed topic, headers that are missing, repeated or malformed are
    ignored and the record's own coordinates are reported.
    """
    if message.topic == rekeyed_topic:
        original = _rekeyed_from(message.headers)
        if original is not None:
            return original
    return RejectionSource(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=decode_key(message.key),
    )


def _rekeyed_from(headers: Headers | None) -> RejectionSource | None:
    found: dict[str, bytes] = {}
    for name, value in headers or ():
        if name in SOURCE_HEADERS:
            if name in found or not isinstance(value, bytes):
                return None  # repeated: not something this worker wrote
            found[name] = value
    if len(found) != len(SOURCE_HEADERS):
        return None
    topic, partition, offset = (found[name] for name in SOURCE_HEADERS)
    if not (
        _TOPIC_NAME.fullmatch(topic)
        and _NON_NEGATIVE.fullmatch(partition)
        and _NON_NEGATIVE.fullmatch(offset)
    ):
        return None
    # A re-keyed event arrived without a key: that is why it was re-keyed.
    return RejectionSource(
        topic=topic.decode("ascii"), partition=int(partition), offset=int(offset), key=None
    )


def replay_headers(headers: Headers | None) -> Headers | None:
    """The replay headers of a record a replay sent, well-formed, for its new dead letter.

    So a record that fails again carries its attempt count: `dlq replay` skips it after a few.
    """
    kept: list[tuple[str, bytes]] = []
    for name, value in headers or ():
        coordinates = name == REPLAY_HEADER and len(value) <= MAX_COORDINATES_BYTES
        if coordinates or (name == ATTEMPT_HEADER and _ATTEMPT.fullmatch(value)):
            kept.append((name, value))
    names = [name for name, _ in kept]
    if len(set(names)) != len(names):
        return None  # repeated: not what a replay writes
    return kept or None


#: The longest dead-letter coordinates a replay header may carry (topic:partition:offset).
MAX_COORDINATES_BYTES = 300
#: An attempt count as a replay writes it.
_ATTEMPT = re.compile(rb"[1-9][0-9]{0,3}")


def processing_error(exc: BaseException) -> Rejected:
    """The rejection of a record whose handling raised: the exception's type and text."""
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return Rejected("processing_error", text)


@dataclass
class DeadLetters:
    """Sends a record's dead letter, and decides what an exception while handling one does."""

    settings: Settings
    metrics: Metrics
    _last_logged: float = field(default=float("-inf"), init=False)
    _unlogged: int = field(default=0, init=False)

    def reject(self, rejected: Rejected, message: Message, outbox: Outbox) -> None:
        """Send the dead letter: the error, the original bytes, and where they came from."""
        raw = message.value if message.value is not None else b""
        self.metrics.rejected[rejected.code] += 1
        source = original_source(message, self.settings.rekeyed_topic)
        record = build_rejection(rejected, raw, source, rejected_at=datetime.now(UTC))
        # The dead letter keeps the key the event arrived with (null for re-keyed ones).
        key = message.key if source.topic == message.topic else None
        outbox.send(
            self.settings.dlq_topic,
            key=key,
            value=encode_json(record),
            headers=replay_headers(message.headers),
        )
        # Debug only: a stream of bad records must not flood the log at the usual level.
        log.debug(
            "dead letter %s: %s (source %s:%d@%d, key %r)",
            rejected.code,
            rejected.message,
            source.topic,
            source.partition,
            source.offset,
            source.key,
        )

    def failed(self, exc: Exception, message: Message, outbox: Outbox, sent_before: int) -> None:
        """Handling `message` raised `exc`: dead-letter it and go on, or stop (the setting).

        What the record had added to the outbox is dropped first, so it leaves nothing but
        its dead letter; the processors store a record's state change only as its last step,
        so the table never holds a half-applied record.
        """
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        if self.settings.on_processing_error is OnProcessingError.STOP:
            raise exc
        del outbox.records[sent_before:]
        now = time.monotonic()
        if now - self._last_logged >= ERROR_LOG_INTERVAL:
            # At most one traceback a second: a bug that hits every record must not flood the
            # log; the metric counts them all.
            log.error(
                "handling %s failed; dead-lettered as processing_error (%d more since the last "
                "line)",
                where,
                self._unlogged,
                exc_info=exc,
            )
            self._last_logged, self._unlogged = now, 0
        else:
            self._unlogged += 1
        self.reject(processing_error(exc), message, outbox)
