"""Encoding and decoding of events, with decoders and encoders built once per process.

Every place that turns bytes into events goes through here, so that one error type
(`InvalidEvent`) says what was wrong and where, whatever the caller and whatever the
bytes hold: bytes that are not UTF-8 and JSON nested too deeply are invalid events
like any other, never an exception of another kind.
"""

from __future__ import annotations

import hashlib

import msgspec

from schemas.errors import InvalidEvent
from schemas.events import AnyEvent
from schemas.lifecycle_events import AnyLifecycleEvent

_event_decoder = msgspec.json.Decoder(AnyEvent)
_lifecycle_decoder = msgspec.json.Decoder(AnyLifecycleEvent)
_encoder = msgspec.json.Encoder()


def decode_event(data: bytes | str) -> AnyEvent:
    """One JSON object -> its event; raises `InvalidEvent` naming the field path."""
    try:
        return _event_decoder.decode(data)
    except msgspec.ValidationError as error:
        raise InvalidEvent(str(error)) from None
    except msgspec.DecodeError as error:
        raise InvalidEvent(f"malformed JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise InvalidEvent(f"not UTF-8 text (it holds the byte 0x{error.object[error.start]:02x})") from None
    except RecursionError:
        raise InvalidEvent("malformed JSON: nested too deeply") from None


def decode_lifecycle_event(data: bytes | str) -> AnyLifecycleEvent:
    """One JSON object from the `customer-lifecycle` log -> its lifecycle event."""
    try:
        return _lifecycle_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise InvalidEvent(str(error) or type(error).__name__) from None


def encode_event(event: AnyEvent | AnyLifecycleEvent) -> bytes:
    """An event (raw or lifecycle) -> its canonical JSON object."""
    return _encoder.encode(event)


def event_digest(event: AnyEvent) -> bytes:
    """8 bytes that differ when two events with one `event_id` say different things.

    Taken over the canonical encoding, so that spacing, key order and fields the
    contract does not know do not count: the same event written by two producers has
    the same digest. Sealed personal values count by their field names only: after an
    erasure the customer's old values cannot be sealed the same way again (their key
    is gone), so a re-publish of the same file must still be told a duplicate; and a
    digest of the values would outlive the erasure in the id index.
    """
    sealed = getattr(event, "sealed", None)
    if sealed:
        event = msgspec.structs.replace(event, sealed=dict.fromkeys(sorted(sealed), ""))
    return hashlib.blake2b(_encoder.encode(event), digest_size=8).digest()
