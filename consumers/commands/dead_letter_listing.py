"""`lifecycle dead-letters`: the records the engine refused, and what to do about them.

Counts by kind with each kind's meaning and fix, a few examples of each (where on the
log, why, the payload's first bytes with personal data masked), and the records the
time rule holds back (projections/reading/dead_letter_summary.py). The projections are read as
`lifecycle sql` reads them: read-only, from the snapshot while an engine runs. Also the
hint that `process` and `replay` print when they dead-letter anything.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from consumers.commands.output import snapshot_note, visible
from consumers.settings import Settings
from projections.reading.dead_letter_summary import summary
from projections.reading.query import reading

HINT = (
    "see `lifecycle dead-letters`; once the producer or the policy is fixed, "
    "`lifecycle replay --policy FILE` derives them again"
)


def list_dead_letters(settings: Settings, kind: str | None, limit: int) -> dict[str, Any]:
    """The listing as plain data (the `--format json` document)."""
    settings.require_home()
    with reading(settings.views_path) as (connection, source):
        document = summary(connection, kind=kind, limit=limit)
    note = snapshot_note(source, settings.views_path)
    if note is not None:
        print(note, file=sys.stderr)
    return document


def render_text(document: dict[str, Any]) -> str:
    """The listing for a person: each kind with its count, meaning, fix and examples,
    then the held records; one line when there is nothing to list."""
    held = document["held_records"]
    lines = [_heading(document)]
    for kind in document["kinds"]:
        lines += ["", *_kind_lines(kind)]
    if held is not None and (held["count"] or document["kinds"]):
        lines += ["", *_held_lines(held)]
    return "\n".join(lines)


def _heading(document: dict[str, Any]) -> str:
    count, held = document["dead_letters"], document["held_records"]
    of = "" if document["kind"] is None else f" of kind {document['kind']}"
    if count:
        return (f"{count:,} dead letters{of}: records on the log the engine refused, each still on the log "
                "at its partition and position; what to do is under each kind")
    none_held = held is not None and not held["count"]
    return f"no dead letters{of}" + (", and no record held back by the time rule" if none_held else "")


def _kind_lines(kind: dict[str, Any]) -> list[str]:
    lines = [f"{kind['kind']}: {kind['count']:,}" + (f" - {kind['meaning']}" if kind["meaning"] else "")]
    if kind["fix"]:
        lines.append(f"  what to do: {kind['fix']}")
    for example in kind["examples"]:
        lines += [f"  {visible(example['partition'])} @ {example['position']}: {visible(example['reason'])}",
                  f"    {_payload_line(example)}"]
    more = kind["count"] - len(kind["examples"])
    if more:
        lines.append(f"  ... and {more:,} more (`--limit N` shows N of each kind)")
    return lines


def _payload_line(example: dict[str, Any]) -> str:
    size = "" if example["payload_bytes"] is None else f" ({example['payload_bytes']:,} bytes)"
    if example["payload"] is None:
        return f"payload{size}: withheld, it may hold personal data (the record is on the log at this position)"
    masked = ", personal data masked (the record is on the log at this position)" if example["masked"] else ""
    cut = " ..." if example["truncated"] else ""
    return f"payload{size}{masked}: {visible(example['payload'])}{cut}"


def _held_lines(held: dict[str, Any]) -> list[str]:
    if not held["count"]:
        return ["no record is held back by the time rule"]
    lines = [f"{held['count']:,} records held back by the time rule until time confirms them:"]
    for record in held["examples"]:
        customer = "" if record["customer_id"] is None else f" customer {visible(record['customer_id'])},"
        lines.append(f"  {visible(record['partition'])} @ {record['position']}:{customer} dated "
                     f"{_time(record['occurred_at'])}: {visible(record['reason'])}")
    return lines


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
