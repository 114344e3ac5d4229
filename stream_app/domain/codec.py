"""JSON encoding of everything the worker emits, and decoders for reading it back."""

from __future__ import annotations

import msgspec

from stream_app.domain.model import CustomerSession, Transition
from stream_app.domain.rejection import Rejection

_encoder = msgspec.json.Encoder()
_session_decoder = msgspec.json.Decoder(CustomerSession)
_transition_decoder = msgspec.json.Decoder(Transition)
_rejection_decoder = msgspec.json.Decoder(Rejection)


def encode_json(obj: object) -> bytes:
    """Encode an output record (CustomerSession, Transition, Rejection, ...) as JSON."""
    return _encoder.encode(obj)


def decode_customer_session(raw: bytes) -> CustomerSession:
    """Decode a CustomerSession snapshot (raises msgspec errors on garbage)."""
    return _session_decoder.decode(raw)


def decode_transition(raw: bytes) -> Transition:
    """Decode a Transition record (raises msgspec errors on garbage)."""
    return _transition_decoder.decode(raw)


def decode_rejection(raw: bytes) -> Rejection:
    """Decode a Rejection dead-letter record (raises msgspec errors on garbage)."""
    return _rejection_decoder.decode(raw)
