"""Every wire and storage format of the worker, each built once: one place per format.

- JSON of the output records (CustomerSession, Transition, Rejection) and of the internal
  profile claims and verdicts;
- msgpack of the stored session (the `sessions` table's value).

Input events are decoded (and validated) at the input boundary, `decoding.decode_event`.
"""

from __future__ import annotations

import msgspec

from stream_app.domain.outputs import CustomerSession, Transition
from stream_app.domain.profiles import ProfileClaim, ProfileVerdict
from stream_app.domain.rejection import Rejection
from stream_app.domain.stored import StoredSession

_json_encoder = msgspec.json.Encoder()
_session_decoder = msgspec.json.Decoder(CustomerSession)
_transition_decoder = msgspec.json.Decoder(Transition)
_rejection_decoder = msgspec.json.Decoder(Rejection)
_claim_decoder = msgspec.json.Decoder(ProfileClaim)
_verdict_decoder = msgspec.json.Decoder(ProfileVerdict)
_stored_encoder = msgspec.msgpack.Encoder()
_stored_decoder = msgspec.msgpack.Decoder(StoredSession)


def encode_json(obj: object) -> bytes:
    """Encode an output record (CustomerSession, Transition, Rejection, ...) as JSON."""
    return _json_encoder.encode(obj)


def decode_customer_session(raw: bytes) -> CustomerSession:
    """Decode a CustomerSession snapshot (raises msgspec errors on garbage)."""
    return _session_decoder.decode(raw)


def decode_transition(raw: bytes) -> Transition:
    """Decode a Transition record (raises msgspec errors on garbage)."""
    return _transition_decoder.decode(raw)


def decode_rejection(raw: bytes) -> Rejection:
    """Decode a Rejection dead-letter record (raises msgspec errors on garbage)."""
    return _rejection_decoder.decode(raw)


def encode_claim(claim: ProfileClaim) -> bytes:
    """Encode a claim as JSON for the internal claims topic."""
    return _json_encoder.encode(claim)


def decode_claim(raw: bytes) -> ProfileClaim:
    """Decode a claim written by encode_claim (raises msgspec errors on garbage)."""
    return _claim_decoder.decode(raw)


def encode_verdict(verdict: ProfileVerdict) -> bytes:
    """Encode a verdict as JSON for the internal verdicts topic."""
    return _json_encoder.encode(verdict)


def decode_verdict(raw: bytes) -> ProfileVerdict:
    """Decode a verdict written by encode_verdict (raises msgspec errors on garbage)."""
    return _verdict_decoder.decode(raw)


def encode_stored(stored: StoredSession) -> bytes:
    """Encode a stored session as msgpack for the `sessions` table."""
    return _stored_encoder.encode(stored)


def decode_stored(raw: bytes) -> StoredSession:
    """Decode a stored session written by encode_stored (raises msgspec errors on garbage)."""
    return _stored_decoder.decode(raw)
