"""`lifecycle explain CUSTOMER`: one customer's whole story, for auditors.

Oldest first, every lifecycle event of the customer with its rule (id and words), the
policy version and the thresholds it applied, the facts the rule read, and the events
that caused it, read back from the log of record at their positions (type, time,
position, payload with personal data masked). Now (on neither time axis), also their
value model figures, with the purchase summary and the fit they come from. `--as-of` and `--known-at` put the
story on one of its two time axes (projections/catalog/history.py). The projections are read
as `lifecycle sql` reads them: read-only, from the snapshot while an engine runs.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from consumers.errors import LifecycleError
from consumers.logs.event_log import CUSTOMER_EVENTS, EventLog
from consumers.logs import open_event_log
from consumers.privacy.personal_data import Opener
from consumers.settings import Settings
from lifecycle.reasons import POLICY_SECTIONS, rule_in_words
from projections.catalog.history import Story, story
from projections.catalog.profiles import SEALED, masked, masked_value, profile
from projections.reading.query import reading
from schemas import InvalidEvent, decode_event
from schemas.events import AnyEvent


class UnknownCustomer(LifecycleError):
    """No customer of that id in the projections (on the axis asked for)."""


def explain(
    settings: Settings,
    customer_id: str,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    opener: Opener | None = None,
    database: Path | None = None,
) -> dict[str, Any]:
    """The customer's story as plain data (the `--format json` document): personal data
    masked, or with `opener` (a reader allowed it) opened and shown in clear. From
    `database` (a partner's snapshot), or the projections."""
    settings.require_home()
    with reading(database or settings.views_path) as (connection, _):
        found = story(connection, customer_id, as_of, known_at)
        stored = profile(connection, customer_id)
    if found is None:
        where = "" if as_of is None and known_at is None else " on the time axis asked for"
        msg = (
            f"no customer {customer_id!r} in the projections{where}: check the id "
            "(`lifecycle sql \"select customer_id from customers\"`), or run `lifecycle process` first"
        )
        raise UnknownCustomer(msg)
    with open_event_log(settings, CUSTOMER_EVENTS, create=False) as log:
        causes = _causes(log, found)
    if opener is not None:
        causes = {event_id: (opener.open(event), *where) for event_id, (event, *where) in causes.items()}
    document = _document(customer_id, found, causes, known_at, opener is not None)
    document["profile"] = ({name: masked_value(value) for name, value in stored.items()} if opener is None
                           else opener.open_profile(customer_id, stored))
    return document


def _causes(log: EventLog, found: Story) -> dict[uuid.UUID, tuple[AnyEvent, str, int]]:
    """The causing events, read from the log at their positions: id -> (event, partition, position)."""
    wanted: dict[tuple[str, int], set[uuid.UUID]] = defaultdict(set)
    for transition in found.transitions:
        key = (transition["log_partition"], transition["cause_position"])
        wanted[key].update(transition["caused_by"])
    out: dict[uuid.UUID, tuple[AnyEvent, str, int]] = {}
    for (partition, position), ids in sorted(wanted.items()):
        batches = log.read(lambda _, at=position: at - 1, partitions=[partition], until={partition: position})
        for batch in batches:
            for raw, at in zip(batch.values, batch.positions):
                event = _decoded(raw) if at == position else None
                if event is not None and event.event_id in ids:
                    out[event.event_id] = (event, partition, position)
    return out


def _decoded(raw: bytes) -> AnyEvent | None:
    try:
        return decode_event(raw)
    except InvalidEvent:
        return None  # a dead letter: never a cause


def _document(
    customer_id: str,
    found: Story,
    causes: dict[uuid.UUID, tuple[AnyEvent, str, int]],
    known_at: datetime | None,
    unmasked: bool,
) -> dict[str, Any]:
    state = dict(found.state)
    as_of = state.pop("as_of", None)
    state.pop("customer_id", None)
    return {
        "customer_id": customer_id,
        "as_of": as_of,
        "known_at": known_at,
        "state": state,
        "transitions": [_transition(t, found.policies, causes, unmasked) for t in found.transitions],
        "value_model": found.value_model,
    }


def _transition(
    row: dict[str, Any], policies: dict[str, dict[str, Any]], causes: dict[uuid.UUID, tuple[AnyEvent, str, int]],
    unmasked: bool,
) -> dict[str, Any]:
    policy = policies.get(row["policy_version"], {})
    return {
        **{key: row[key] for key in (
            "event_id", "sequence", "dimension", "from_value", "to_value", "occurred_at", "rule", "policy_version"
        )},
        "rule_text": rule_in_words(row["rule"]),
        "thresholds": {section: policy.get(section) for section in POLICY_SECTIONS[row["dimension"]]},
        "facts": row["facts"],
        "log_partition": row["log_partition"],
        "log_position": row["log_position"],
        "caused_by": [_cause(cause, causes.get(cause), unmasked) for cause in row["caused_by"]],
    }


def _cause(event_id: uuid.UUID, found: tuple[AnyEvent, str, int] | None, unmasked: bool) -> dict[str, Any]:
    if found is None:
        return {"event_id": event_id, "type": None, "occurred_at": None, "found": False}
    event, partition, position = found
    payload = msgspec.to_builtins(event)
    if not unmasked:
        payload = masked(payload)
    elif payload.get("sealed"):
        payload.update(dict.fromkeys(payload.pop("sealed"), SEALED))  # erased: no key opens it
    return {
        "event_id": event_id,
        "type": payload.pop("type"),
        "occurred_at": event.occurred_at,
        "log_partition": partition,
        "log_position": position,
        "payload": {k: v for k, v in payload.items() if k not in ("event_id", "occurred_at")},
    }


def render_text(document: dict[str, Any]) -> str:
    """The story for a person: a header with where the customer stands, then each
    lifecycle event with its rule, facts, thresholds and causes."""
    state = document["state"]
    axis = (
        f"as known at {_time(document['known_at'])}" if document["known_at"] is not None
        else f"as of {_time(document['as_of'])}" if document["as_of"] is not None else "now"
    )
    stands = ", ".join(f"{d.replace('_', ' ')} {state[d]}" for d in POLICY_SECTIONS if d in state)
    lines = [f"customer {document['customer_id']}, {axis}: {stands}"]
    if document.get("profile"):
        lines.append("profile: " + ", ".join(f"{k}={v}" for k, v in document["profile"].items()))
    if document.get("value_model"):
        lines.append(_value_model_line(document["value_model"]))
    if not document["transitions"]:
        lines.append("no lifecycle event: every dimension has its starting value")
    for t in document["transitions"]:
        lines += [
            "",
            f"#{t['sequence']} {_time(t['occurred_at'])} {t['dimension']}: {t['from_value']} -> {t['to_value']}",
            f"  rule {t['rule']}: {t['rule_text']}",
            f"  policy {t['policy_version']}: " + "; ".join(
                f"[{section}] " + ", ".join(f"{k}={v}" for k, v in (values or {}).items())
                for section, values in t["thresholds"].items()
            ),
        ]
        if t["facts"]:
            lines.append("  facts: " + ", ".join(f"{k}={v}" for k, v in t["facts"].items()))
        for cause in t["caused_by"]:
            lines.append(f"  caused by {_cause_line(cause)}")
        if not t["caused_by"]:
            lines.append(f"  caused by time alone: the threshold was reached at {_time(t['occurred_at'])} "
                         f"(noticed at {t['log_partition']} @ {t['log_position']})")
    return "\n".join(lines)


def _value_model_line(model: dict[str, Any]) -> str:
    figures = ("no figures: the fit's parameters overflow for this customer" if model["p_alive"] is None else
               f"p_alive {model['p_alive']}, expected purchases {model['expected_purchases']}, expected spend "
               f"{model['expected_spend_minor']}, model CLV {model['model_clv_minor']}")
    return (
        f"value model {model['model_id']} as of {_time(model['cutoff'])} (BG/NBD r={model['r']:.4g} "
        f"alpha={model['alpha']:.4g} a={model['a']:.4g} b={model['b']:.4g}; Gamma-Gamma p={model['p']:.4g} "
        f"q={model['q']:.4g} gamma={model['gamma']:.4g} {model['currency']} minor units), from "
        f"{model['frequency']} repeat purchase days, the last {model['recency_days']} days after the first, "
        f"the first {model['age_days']} days before the cutoff, {model['monetary_minor']:g} a repeat day: {figures}"
    )


def _cause_line(cause: dict[str, Any]) -> str:
    if cause.get("found") is False:
        return f"{cause['event_id']} (not found on the log at its recorded position)"
    payload = ", ".join(f"{k}={v}" for k, v in cause["payload"].items() if v is not None)
    return (
        f"{cause['type']} {cause['event_id']} at {_time(cause['occurred_at'])} "
        f"({cause['log_partition']} @ {cause['log_position']}): {payload}"
    )


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat().replace("+00:00", "Z")
