"""Reading under a role (consumers/privacy/roles_file.py): which projections a role reads, and
`lifecycle tail`, which shows each log's records as the role may see them."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import msgspec

from consumers.privacy.access_log import SQLiteAccessLog
from consumers.privacy.key_store import open_customer_keys
from consumers.errors import ConfigurationError
from consumers.logs.event_log import CUSTOMER_EVENTS, EventLog, PositionOf, RecordBatch
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


class _Head(msgspec.Struct):
    """The two fields `tail` filters on, decoded without the rest of the record."""

    type: str = ""
    customer_id: str | None = None


_head = msgspec.json.Decoder(_Head)
_FOLLOW_EVERY_S = 1.0


def tail(args: argparse.Namespace, settings: Settings) -> int:
    if settings.kafka is None:
        settings.require_home()
    out = sys.stdout.buffer
    # To a program the records go as they are; on a terminal, terminal-safe.
    safe = (lambda raw: safe_json(raw.decode("utf-8", "replace")).encode()) if sys.stdout.isatty() else bytes
    wanted = _wanted(args)
    with ExitStack() as stack:
        log = stack.enter_context(open_event_log(settings, args.log, create=False))
        positions = _starts(args.start or [], log.partitions())
        stack.callback(_tell_where, positions, bool(args.start or args.follow))
        shown, after_batch = _tail_view(args, settings, stack)
        try:
            while True:
                for batch in _partition_by_partition(log, positions.get):
                    chosen = (shown(raw) for raw in map(bytes, batch.values) if wanted(raw))
                    lines = [safe(line) for line in chosen if line is not None]
                    after_batch()
                    out.write(b"".join(line + b"\n" for line in lines))
                    positions[batch.tracking.application_name] = batch.tracking.notification_id
                if not args.follow:
                    break
                out.flush()
                time.sleep(_FOLLOW_EVERY_S)
        except KeyboardInterrupt:
            if not args.follow:
                raise  # Ctrl-C is how a follow ends; anywhere else it interrupts
    out.flush()
    return 0


def _partition_by_partition(log: EventLog, position_of: PositionOf) -> Iterator[RecordBatch]:
    """The log's batches one partition after another, in the partitions' order: the same
    output for the same log. Read all at once, Kafka interleaves partitions as its fetches
    happen to answer, so two reads of one topic would print different orders."""
    for partition in log.partitions():
        yield from log.read(position_of, partitions=[partition])


def _starts(given: list[str], partitions: list[str]) -> dict[str, int]:
    """Where `--from` starts each partition: `N` for all of them, `PARTITION=N` for one
    (a later one wins); after position N, as `status`, `process -v` and this command
    tell positions."""
    starts: dict[str, int] = {}
    for text in given:
        name, _, number = text.rpartition("=")
        if not number.isdigit():
            raise ConfigurationError(f"--from {text}: not a position; give N (every partition) or PARTITION=N, "
                                     f"e.g. --from 120 or --from {partitions[0]}=120")
        if name and name not in partitions:
            raise ConfigurationError(f"--from {text}: no partition {name!r}; the log's are {', '.join(partitions)}")
        starts.update({p: int(number) for p in ([name] if name else partitions)})
    return starts


def _tell_where(positions: dict[str, int], asked: bool) -> None:
    """Where the reading stopped, and how to go on from there: after a `--from` or a
    `--follow`, when a reader is likely to come back."""
    if asked and positions:
        where = " ".join(f"--from {name}={position}" for name, position in sorted(positions.items()))
        print(f"lifecycle tail: read up to {where.replace('--from ', '')}; go on from there with {where}",
              file=sys.stderr)


def _wanted(args: argparse.Namespace) -> Callable[[bytes], bool]:
    """Whether a record is of the customer and types asked for (every record, if none)."""
    customer, types = args.customer, frozenset(args.type or ())
    if customer is None and not types:
        return lambda raw: True

    def wanted(raw: bytes) -> bool:
        try:
            head = _head.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        return (customer is None or head.customer_id == customer) and (not types or head.type in types)

    return wanted


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
        access.record(getpass.getuser(), role.name, "tail", opener.batch_done())

    return shown, after_batch


def _customer_of(raw: bytes) -> str | None:
    try:
        return decode_lifecycle_event(raw).customer_id
    except SchemaError:
        return None
