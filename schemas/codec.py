"""Encoding and decoding of events, with decoders and encoders built once per process.

Every place that turns bytes into events goes through here, so that one error type
(`InvalidEvent`) says what was wrong and where, whatever the caller.
"""

from __future__ import annotations

import msgspec

from schemas.errors import InvalidEvent
from schemas.events import AnyEvent

_event_decoder = msgspec.json.Decoder(AnyEvent)
_events_decoder = msgspec.json.Decoder(list[AnyEvent])
_encoder = msgspec.json.Encoder()


def decode_event(data: bytes | str) -> AnyEvent:
    """One JSON object -> its event; raises `InvalidEvent` naming the field path."""
    try:
        return _event_decoder.decode(data)
    except msgspec.ValidationError as error:
        raise InvalidEvent(str(error)) from None
    except msgspec.DecodeError as error:
        raise InvalidEvent(f"malformed JSON: {error}") from None


def decode_events(data: bytes) -> list[AnyEvent]:
    """A JSON array of events -> the events, all or none (a segment of the log)."""
    try:
        return _events_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise InvalidEvent(str(error)) from None


def encode_event(event: AnyEvent) -> bytes:
    """An event -> its canonical JSON object."""
    return _encoder.encode(event)
