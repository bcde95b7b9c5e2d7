"""Reading under a role (consumers/privacy/roles_file.py): which projections a role reads, and
`lifecycle tail`, which shows each log's records as the role may see them."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from consumers.privacy.access_log import SQLiteAccessLog
from consumers.privacy.key_store import open_customer_keys
from consumers.errors import ConfigurationError
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.logs import open_event_log
from consumers.commands.output import safe_json
from consumers.privacy.personal_data import Opener
from consumers.privacy.roles_file import load_roles
from consumers.settings import Settings
from projections.catalog.profiles import WITHHELD, masked_payload
from projections.reading.query import reading
from projections.reading.roles import Role, RoleRefused, snapshot_of
from schemas import SchemaError, decode_event, decode_lifecycle_event, encode_event

Shown = Callable[[bytes], bytes | None]
"""A record as the reader sees it; None: not for this reader."""


def role_of(settings: Settings, name: str | None) -> Role:
    """The role named (the roles file's default if None)."""
    return load_roles(settings.roles).role(name)


def readable(settings: Settings, role: Role) -> Path:
    """The projections `role` reads: a partner's own snapshot, or the whole."""
    if role.grant is None:
        return settings.views_path
    database = snapshot_of(settings.views_path, role)
    if not database.exists():
        raise ConfigurationError(f"no snapshot for role {role.name!r} yet ({database}): `lifecycle process` "
                                 "builds it for every partner of the roles file (pass the same --roles)")
    return database


def tail(args: argparse.Namespace, settings: Settings) -> int:
    if settings.kafka is None:
        settings.require_home()
    out = sys.stdout.buffer
    # To a program the records go as they are; on a terminal, terminal-safe.
    safe = (lambda raw: safe_json(raw.decode("utf-8", "replace")).encode()) if sys.stdout.isatty() else bytes
    with ExitStack() as stack:
        log = stack.enter_context(open_event_log(settings, args.log, create=False))
        shown, after_batch = _tail_view(args, settings, stack)
        for batch in log.read(lambda _: None):
            lines = [safe(line) for line in map(shown, map(bytes, batch.values)) if line is not None]
            after_batch()
            out.write(b"".join(line + b"\n" for line in lines))
    out.flush()
    return 0


def _tail_view(args: argparse.Namespace, settings: Settings, stack: ExitStack) -> tuple[Shown, Callable[[], None]]:
    """How `tail` shows a record, and what it does after each batch: lifecycle events as
    they are (they hold no personal data); customer events masked, or with
    `--show-personal` opened with the customers' keys, each batch's reads recorded in
    the access log before they are shown."""
    role = role_of(settings, args.role)
    if role.grant is not None:
        if args.log == CUSTOMER_EVENTS or args.show_personal:
            raise RoleRefused(f"role {role.name!r} is a partner's: it reads customer-lifecycle, of its own customers")
        with reading(readable(settings, role)) as (connection, _):
            granted = {c for (c,) in connection.execute("SELECT customer_id FROM customer_rows").fetchall()}
        return lambda raw: raw if _customer_of(raw) in granted else None, lambda: None
    if args.log != CUSTOMER_EVENTS:
        return bytes, lambda: None
    if not args.show_personal:
        return lambda raw: masked_payload(raw)[0] or WITHHELD, lambda: None
    role.require_clear("tail --show-personal")
    opener = Opener(stack.enter_context(open_customer_keys(settings)))
    access = stack.enter_context(SQLiteAccessLog(settings.home))

    def shown(raw: bytes) -> bytes:
        try:
            event = decode_event(raw)
        except SchemaError:
            return raw
        opened = opener.open(event)
        return raw if opened is event else encode_event(opened)

    def after_batch() -> None:
        access.record(getpass.getuser(), role.name, "tail", opener.opened.items())
        opener.opened.clear()

    return shown, after_batch


def _customer_of(raw: bytes) -> str | None:
    try:
        return decode_lifecycle_event(raw).customer_id
    except SchemaError:
        return None
