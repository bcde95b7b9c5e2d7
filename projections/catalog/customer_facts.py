"""`customer_facts`: every contact, visit, survey answer, complaint, membership,
referral and consent the engine took, one row each, without personal data; and a view
of each kind for analysts (`contacts`, `visits`, `surveys`, `complaints`,
`memberships`, `referrals`, `consents`).

Purchases and refunds are in `value_movements`, profiles in `customer_profiles`. What
a customer wrote in words (a contact's `topic`, a complaint's `resolution`) may name
anyone, so it is left out, as are a programme's member numbers; so "NPS by month",
"how long complaints take to resolve" and "how often customers visit" are one query.
Append-only, written with each checkpoint and in bulk by a replay (the same rows); a
repeat the engine ignored (`customers.duplicates_ignored`) has no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from lifecycle.state import epoch_seconds
from projections import arrow_rows
from projections.arrow_rows import TakenRows, append
from schemas import (
    ComplaintFiled,
    ComplaintResolved,
    ConsentChanged,
    Contact,
    MembershipJoined,
    MembershipLeft,
    ReferralMade,
    SurveyAnswered,
    Visit,
)
from schemas.events import AnyCustomerEvent

_SCHEMA = pa.schema([
    ("event_id", pa.uuid()), ("customer_id", pa.string()), ("kind", pa.string()),
    ("occurred_at", pa.timestamp("s", tz="UTC")), ("source", pa.string()),
    ("channel", pa.string()), ("direction", pa.string()), ("place", pa.string()), ("duration_s", pa.int64()),
    ("nps", pa.int8()), ("csat", pa.int8()), ("complaint_id", pa.string()), ("category", pa.string()),
    ("severity", pa.string()), ("satisfied", pa.bool_()), ("programme", pa.string()),
    ("referred_customer_id", pa.string()), ("purpose", pa.string()), ("granted", pa.bool_()),
    ("log_partition", pa.string()), ("log_position", pa.int64()),
])
_SQL_TYPES = {pa.uuid(): "UUID", pa.string(): "VARCHAR", pa.timestamp("s", tz="UTC"): "TIMESTAMPTZ",
              pa.int64(): "BIGINT", pa.int8(): "TINYINT", pa.bool_(): "BOOLEAN"}
_REQUIRED = {"event_id", "customer_id", "kind", "occurred_at", "source", "log_partition", "log_position"}

DDL = (
    "CREATE TABLE IF NOT EXISTS customer_facts ("
    + ", ".join(f"{f.name} {_SQL_TYPES[f.type]}{' NOT NULL' if f.name in _REQUIRED else ''}" for f in _SCHEMA)
    + ")",
    "CREATE OR REPLACE VIEW contacts AS SELECT event_id, customer_id, occurred_at, source, channel, direction, "
    "log_partition, log_position FROM customer_facts WHERE kind = 'contact'",
    "CREATE OR REPLACE VIEW visits AS SELECT event_id, customer_id, occurred_at, source, place, duration_s, "
    "log_partition, log_position FROM customer_facts WHERE kind = 'visit'",
    "CREATE OR REPLACE VIEW surveys AS SELECT event_id, customer_id, occurred_at, source, nps, csat, "
    "log_partition, log_position FROM customer_facts WHERE kind = 'survey_answered'",
    # A complaint is filed once and resolved at most once; `resolved_at` is NULL while it is open.
    "CREATE OR REPLACE VIEW complaints AS SELECT f.customer_id, f.complaint_id, f.category, f.severity, "
    "f.occurred_at AS filed_at, r.occurred_at AS resolved_at, r.satisfied, "
    "epoch(r.occurred_at - f.occurred_at) / 86400.0 AS days_to_resolve "
    "FROM (SELECT * FROM customer_facts WHERE kind = 'complaint_filed' QUALIFY row_number() OVER "
    "(PARTITION BY customer_id, complaint_id ORDER BY occurred_at, event_id) = 1) f "
    "LEFT JOIN (SELECT * FROM customer_facts WHERE kind = 'complaint_resolved' QUALIFY row_number() OVER "
    "(PARTITION BY customer_id, complaint_id ORDER BY occurred_at, event_id) = 1) r "
    "USING (customer_id, complaint_id)",
    "CREATE OR REPLACE VIEW memberships AS SELECT event_id, customer_id, occurred_at, source, programme, "
    "kind = 'membership_joined' AS joined, log_partition, log_position FROM customer_facts "
    "WHERE kind IN ('membership_joined', 'membership_left')",
    "CREATE OR REPLACE VIEW referrals AS SELECT event_id, customer_id, occurred_at, source, referred_customer_id, "
    "log_partition, log_position FROM customer_facts WHERE kind = 'referral_made'",
    "CREATE OR REPLACE VIEW consents AS SELECT event_id, customer_id, occurred_at, source, purpose, granted, "
    "log_partition, log_position FROM customer_facts WHERE kind = 'consent_changed'",
)
VIEWS = ("contacts", "visits", "surveys", "complaints", "memberships", "referrals", "consents")

_FIELDS = {  # each kind's own columns, named as the event's fields
    Contact: ("contact", ("channel", "direction")),
    Visit: ("visit", ("place", "duration_s")),
    SurveyAnswered: ("survey_answered", ("nps", "csat")),
    ComplaintFiled: ("complaint_filed", ("complaint_id", "category", "severity")),
    ComplaintResolved: ("complaint_resolved", ("complaint_id", "satisfied")),
    MembershipJoined: ("membership_joined", ("programme",)),
    MembershipLeft: ("membership_left", ("programme",)),
    ReferralMade: ("referral_made", ("referred_customer_id",)),
    ConsentChanged: ("consent_changed", ("purpose", "granted")),
}
COLUMNS = tuple(f.name for f in _SCHEMA)
_OWN = COLUMNS[5:-2]

Row = tuple[Any, ...]


class CustomerFacts(TakenRows):
    """The rows of a run of taken events (`TakenRows`)."""

    def take(self, event: AnyCustomerEvent, partition: str, position: int, booked: tuple[int, int] | None,
             taken_at: int | None = None) -> None:
        """Note `event` (at `position`) if it is of a kind kept here and the engine took
        it (`booked` is None for an ignored repeat)."""
        kind = _FIELDS.get(type(event))
        if kind is None or booked is None:
            return
        name, own = kind
        values = [getattr(event, column) if column in own else None for column in _OWN]
        self.add((event.event_id.bytes, event.customer_id, name, epoch_seconds(event.occurred_at), event.source,
                  *values, partition, position), position, taken_at)


def table(rows: Sequence[Row]) -> pa.Table | None:
    return arrow_rows.table(rows, _SCHEMA)


def insert(connection: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
    """Append the rows, inside the caller's transaction."""
    append(connection, "customer_facts", rows)
