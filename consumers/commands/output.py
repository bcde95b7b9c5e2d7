"""Printing results for people and programs: query rows as a table, CSV or JSON, and
documents as text or JSON, all of it terminal-safe.

A value may hold anything a producer wrote: control characters, C1 codes (U+009B opens
a terminal command), bidi overrides (U+202E reverses the text after it), line
separators. None of them reaches the output raw, in any format: a table or a text shows
them escaped (`\\n`, `\\x1b`, `\\u202e`), CSV cells likewise, and JSON as `\\u` escapes
(the same JSON to any parser). A result a live engine's snapshot answered says so.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")


def write_rows(out: TextIO, columns: list[str], rows: Sequence[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([visible(c) for c in columns])
        writer.writerows([visible(v) if isinstance(v, str) else v for v in row] for row in rows)
    elif fmt == "json":
        records = [dict(zip(columns, map(_plain, row))) for row in rows]
        out.write(safe_json(json.dumps(records, ensure_ascii=False)) + "\n")
    else:
        _table(out, columns, rows)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def visible(text: str) -> str:
    """`text` with each non-printable character escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def visible_lines(text: str) -> str:
    """`text` with each non-printable character escaped but its line breaks."""
    return "\n".join(map(visible, text.split("\n")))


def safe_json(encoded: str) -> str:
    """JSON text with each non-printable character it holds raw (JSON escapes only those
    below U+0020) written as a `\\u` escape instead: the same JSON, safe on a terminal."""
    if encoded.isprintable():
        return encoded
    return "".join(c if c.isprintable() or c == "\n" else _json_escape(c) for c in encoded)


def _json_escape(c: str) -> str:
    code = ord(c)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def snapshot_note(source: Path, database: Path) -> str | None:
    """What to tell a reader answered from `source` instead of `database`; None if it was not."""
    if source == database:
        return None
    published = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(source.stat().st_mtime))
    return f"(a running `lifecycle process` holds the projections: answered from its snapshot of {published})"


def _table(out: TextIO, columns: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
    columns = [visible(c) for c in columns]
    cells = [["" if v is None else visible(str(_plain(v))) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
