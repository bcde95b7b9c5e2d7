"""Sealing personal data before it reaches a log, and opening it for a reader allowed to.

Each personal field (schemas/events.py `PERSONAL_FIELDS`: a profile's name, email,
phone, city and birth date, and the free text of contacts and complaint resolutions)
is encrypted on its own with its customer's key (consumers/privacy/customer_keys.py), AES-GCM,
and moved into the event's `sealed` map; the clear field is left empty. Sealed one by
one, each field still merges on its own in `customer_profiles` without being opened.

The nonce is synthetic (as in AES-GCM-SIV): an HMAC, under the customer's key, of the
value, its event id and its place. So sealing is deterministic: the same event
published twice seals to the same bytes, and the log's duplicate check still tells a
re-publish from a conflict; and a nonce repeats only for the same value of the same
event. The place (customer and field) is bound in as associated data: a sealed value
moved to another customer or field does not open; a profile row, which keeps each
field's latest sealed value, opens without its event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consumers.privacy.customer_keys import CustomerKeys
from projections.catalog.profiles import SEALED, SEALED_PREFIX
from schemas import CustomerErased
from schemas.events import PERSONAL_FIELDS, AnyEvent

_NONCE = 12


def place(customer_id: str, field: str) -> bytes:
    """What a sealed value is bound to: its customer and field."""
    return f"{customer_id}\x00{field}".encode()


def seal_value(key: bytes, where: bytes, event_id: object, value: str) -> str:
    plain = value.encode()
    nonce = hmac.digest(key, b"%s\x00%s\x00%s" % (where, str(event_id).encode(), plain), hashlib.sha256)[:_NONCE]
    return base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, plain, where)).rstrip(b"=").decode()


def open_value(key: bytes, where: bytes, sealed: str) -> str | None:
    """The value, or None if this key does not open it (another key, or damaged)."""
    raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], where).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        return None


_BY_TYPE: dict[type, tuple[str, ...]] = {
    kind: PERSONAL_FIELDS[kind.__struct_config__.tag]  # type: ignore[attr-defined]
    for kind in AnyEvent.__args__  # type: ignore[attr-defined]
    if kind.__struct_config__.tag in PERSONAL_FIELDS  # type: ignore[attr-defined]
}


def personal(event: AnyEvent) -> tuple[str, ...]:
    """The personal fields `event` carries in clear."""
    names = _BY_TYPE.get(type(event))
    return () if names is None else tuple(name for name in names if getattr(event, name) is not None)


def seal(event: AnyEvent, key: bytes) -> AnyEvent:
    """`event` with each personal field sealed under `key`."""
    names = personal(event)
    return _sealed(event, names, key) if names else event


def _sealed(event: AnyEvent, names: tuple[str, ...], key: bytes) -> AnyEvent:
    customer_id = event.customer_id  # type: ignore[union-attr]
    sealed = dict(event.sealed or {})  # type: ignore[union-attr]
    sealed.update((name, seal_value(key, place(customer_id, name), event.event_id, getattr(event, name)))
                  for name in names)
    return msgspec.structs.replace(event, sealed=sealed, **dict.fromkeys(names))


def open_fields(customer_id: str, sealed: dict[str, str], key: bytes | None) -> dict[str, str | None]:
    """Each sealed field opened with the customer's key (None for a field it does not
    open, and for all of them when the customer has no key: erased)."""
    return {name: None if key is None else open_value(key, place(customer_id, name), value)
            for name, value in sealed.items()}


class Sealer:
    """Seals what a publisher appends, in log order, with the keys of `keys`; an erasure
    destroys its customer's key as it passes, so a profile given after it is sealed
    with a new one (the customer's data from before stays unreadable)."""

    def __init__(self, keys: CustomerKeys) -> None:
        self.keys = keys

    def seal_all(self, events: Iterable[AnyEvent]) -> list[AnyEvent]:
        events = list(events)
        named = [personal(event) for event in events]
        keys = self.keys.keys_or_new(e.customer_id for e, n in zip(events, named) if n)  # type: ignore[union-attr]
        sealed = []
        for event, names in zip(events, named):
            if type(event) is CustomerErased:
                self.keys.destroy([event.customer_id])
                keys.pop(event.customer_id, None)
            elif names:
                customer_id = event.customer_id  # type: ignore[union-attr]
                key = keys.get(customer_id)
                if key is None:
                    key = keys[customer_id] = self.keys.keys_or_new([customer_id])[customer_id]
                event = _sealed(event, names, key)
            sealed.append(event)
        return sealed


class Opener:
    """Opens sealed fields for a reader allowed personal data in clear (`open`), and
    says which it opened (`opened`: customer -> fields), for the access log. A field
    whose customer was erased stays sealed: no key the system holds opens it."""

    def __init__(self, keys: CustomerKeys) -> None:
        self.keys = keys
        self.opened: dict[str, set[str]] = {}
        # The keys looked up since `batch_done`: one lookup a customer a batch, not one a
        # record; forgotten with each batch, so that an erasure meanwhile is seen.
        self._looked_up: dict[str, bytes | None] = {}

    def batch_done(self) -> list[tuple[str, set[str]]]:
        """The reads since the last batch (customer, fields), for the access log; the
        keys looked up for them are forgotten."""
        done = list(self.opened.items())
        self.opened, self._looked_up = {}, {}
        return done

    def open_profile(self, customer_id: str, stored: dict[str, str]) -> dict[str, str]:
        """A `customer_profiles` row in clear, as far as the customer's key opens it (a
        value held in clear, from a log written before sealing, counts as read too)."""
        sealed = {name: value[len(SEALED_PREFIX):] for name, value in stored.items() if value.startswith(SEALED_PREFIX)}
        self._read(customer_id, [name for name in stored if name not in sealed])
        readable = self._open(customer_id, sealed)
        return {name: readable.get(name, SEALED) if name in sealed else value for name, value in stored.items()}

    def open(self, event: AnyEvent) -> AnyEvent:
        """`event` with its sealed fields opened where the key opens them; its personal
        fields in clear (a log written before sealing) count as read too."""
        sealed = getattr(event, "sealed", None)
        customer_id = getattr(event, "customer_id", "")
        self._read(customer_id, personal(event))
        readable = self._open(customer_id, sealed or {})
        if not readable:
            return event
        rest = {name: value for name, value in sealed.items() if name not in readable} or None
        return msgspec.structs.replace(event, sealed=rest, **readable)

    def _open(self, customer_id: str, sealed: dict[str, str]) -> dict[str, str]:
        """The sealed fields the customer's key opens, recorded as read."""
        if not sealed:
            return {}
        if customer_id not in self._looked_up:
            self._looked_up[customer_id] = self.keys.key(customer_id)
        opened = open_fields(customer_id, sealed, self._looked_up[customer_id])
        readable = {name: value for name, value in opened.items() if value is not None}
        self._read(customer_id, readable)
        return readable

    def _read(self, customer_id: str, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self.opened.setdefault(customer_id, set()).update(names)
