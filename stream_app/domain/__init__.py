"""The pure domain core: decoding events, applying them to sessions, encoding outputs."""

from stream_app.domain.apply import apply_event
from stream_app.domain.codec import (
    decode_claim,
    decode_customer_session,
    decode_rejection,
    decode_stored,
    decode_transition,
    decode_verdict,
    encode_claim,
    encode_json,
    encode_stored,
    encode_verdict,
)
from stream_app.domain.decoding import decode_event, decode_key
from stream_app.domain.events import (
    AdditionalCost,
    CartItemInput,
    Event,
    ReturnEvent,
    ReturnLine,
    SessionPatch,
    UpdateEvent,
)
from stream_app.domain.limits import session_too_large
from stream_app.domain.outcomes import Applied, Rejected, RejectionCode, Skipped
from stream_app.domain.outputs import CartItem, CustomerSession, SessionStatus, Transition
from stream_app.domain.pricing import cart_total, unit_price
from stream_app.domain.profiles import (
    ProfileClaim,
    ProfileVerdict,
    apply_verdict,
    decide_claim,
    profile_key,
)
from stream_app.domain.rejection import Rejection, RejectionDetail, RejectionSource, build_rejection
from stream_app.domain.stored import StoredSession, is_held, published_snapshot

__all__ = [
    "AdditionalCost",
    "Applied",
    "CartItem",
    "CartItemInput",
    "CustomerSession",
    "Event",
    "ProfileClaim",
    "ProfileVerdict",
    "Rejected",
    "Rejection",
    "RejectionCode",
    "RejectionDetail",
    "RejectionSource",
    "ReturnEvent",
    "ReturnLine",
    "SessionPatch",
    "SessionStatus",
    "Skipped",
    "StoredSession",
    "Transition",
    "UpdateEvent",
    "apply_event",
    "apply_verdict",
    "build_rejection",
    "cart_total",
    "decide_claim",
    "decode_claim",
    "decode_customer_session",
    "decode_event",
    "decode_key",
    "decode_rejection",
    "decode_stored",
    "decode_transition",
    "decode_verdict",
    "encode_claim",
    "encode_json",
    "encode_stored",
    "encode_verdict",
    "is_held",
    "profile_key",
    "published_snapshot",
    "session_too_large",
    "unit_price",
]
