"""What a line a producer wrote most likely meant, where the contract refused it.

The decoder says what is wrong and where (`Expected int, got float - at
$.amount_minor`); a person also needs the likely cause and the fix. These hints read
the refused line and the decoder's message, and add one: JSON Lines expected (a CSV
file, pretty-printed or array JSON), amounts in whole minor units, ISO 4217 codes in
upper case, a field named nearly as the contract names it. They also name the fields
of a valid line that the contract does not know (dropped on decoding, so that newer
producers do not break older engines; `publish --strict` refuses them instead).
"""

from __future__ import annotations

import difflib
import re

import msgspec

from schemas.events import AnyEvent

_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_FIELDS = {cls.__struct_config__.tag: frozenset(  # type: ignore[attr-defined]
    [cls.__struct_config__.tag_field, *(f.encode_name for f in msgspec.structs.fields(cls))])  # type: ignore[attr-defined]
    for cls in AnyEvent.__args__}  # type: ignore[attr-defined]
_PATH = re.compile(r"- at `\$\.(\w+)`")
_MISSING = re.compile(r"missing required field `(\w+)`")
JSON_LINES = ("publish reads JSON Lines: one whole event object per line, e.g. "
              '{"type": "visit", "event_id": "...", ...}')


def unknown_fields(line: bytes, event: AnyEvent) -> set[str]:
    """The top-level fields of `line` (which decoded to `event`) that its type does not have."""
    return _TOP_LEVEL.decode(line).keys() - _FIELDS[type(event).__struct_config__.tag]  # type: ignore[attr-defined]


def hint_for(line: bytes, message: str) -> str | None:
    """The likely cause of `message` (why the contract refused `line`) and its fix, if one is known."""
    return _shape_hint(line, message) or _field_hint(line, message)


def _shape_hint(line: bytes, message: str) -> str | None:
    """The line is not one JSON object: another format, or JSON spread over lines."""
    if not (message.startswith("malformed JSON") or message.startswith("Expected `object`")):
        return None
    text = line.strip()
    if text.startswith(b"[") and text.endswith(b"]") and len(text) > 2:
        return f"this line is a JSON array: {JSON_LINES}; `jq -c '.[]' FILE` turns an array into that"
    if text in (b"{", b"}", b"[", b"]", b"},", b"],") or text.endswith((b",", b"{", b"[")) or text.startswith(b'"'):
        return (f"this looks like JSON spread over several lines (pretty-printed): {JSON_LINES}; "
                "`jq -c . FILE` writes each object on one line")
    if not text.startswith((b"{", b"[")) and (b"," in text or b"\t" in text or b";" in text):
        return f"this looks like CSV or another table format: {JSON_LINES}"
    return None


def _field_hint(line: bytes, message: str) -> str | None:
    """A field the contract refused, or one it misses that the line names nearly so."""
    at = _PATH.search(message)
    if at is not None:
        field = at.group(1)
        if field.endswith("_minor") and "got `float`" in message:
            return "amounts are whole minor units (cents, pence): 19.99 EUR is 1999"
        if field == "currency":
            value = _value(line, field)
            if isinstance(value, str) and value.upper() != value and len(value) == 3:
                return f"currency codes are ISO 4217, in upper case: {value.upper()!r}, not {value!r}"
        return None
    missing = _MISSING.search(message)
    if missing is None:
        return None
    try:
        given = list(_TOP_LEVEL.decode(line))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    near = difflib.get_close_matches(missing.group(1), given, n=1, cutoff=0.5)
    if near:
        return f"the line has `{near[0]}`: did you mean `{missing.group(1)}`?"
    return None


def _value(line: bytes, field: str) -> object:
    try:
        raw = _TOP_LEVEL.decode(line).get(field)
        return None if raw is None else msgspec.json.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
