"""Input a person got wrong: each refused line says the likely cause and the fix, once;
fields the contract does not know are counted and reported (refused with --strict); a
byte order mark is read past. The valid lines beside them still go through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.settings import Settings
from tests.cli import lifecycle

GOOD = {"type": "purchase", "event_id": "00000000-0000-4000-8000-000000000001", "occurred_at": "2025-01-01T00:00:00Z",
        "source": "shop", "customer_id": "c1", "order_id": "o1", "amount_minor": 1999, "currency": "EUR"}


def _line(n: int, **changes: object) -> str:
    event = {**GOOD, "event_id": f"00000000-0000-4000-8000-{n:012}", "order_id": f"o{n}", **changes}
    return json.dumps({k: v for k, v in event.items() if v is not None})


def _publish(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *flags: str) -> tuple[int, dict[int, str], str]:
    source = tmp_path / "input.jsonl"
    source.write_bytes(text.encode() if isinstance(text, str) else text)
    capsys.readouterr()
    status = lifecycle(Settings(home=tmp_path / "home"), "publish", str(source), *flags)
    lines = capsys.readouterr().err.splitlines()
    said = {int(line.split(":")[0][5:]): line.split(": ", 1)[1] for line in lines if line.startswith("line ")}
    return status, said, lines[-1]


@pytest.mark.parametrize(("given", "hint"), [
    ("customer_id,amount_minor,currency\nc1,1999,EUR", "this looks like CSV"),
    ('[{"type": "visit"}]', "this line is a JSON array"),
    (_line(2, amount_minor=19.99), "amounts are whole minor units (cents, pence): 19.99 EUR is 1999"),
    (_line(2, currency="eur"), "currency codes are ISO 4217, in upper case: 'EUR', not 'eur'"),
    (_line(2, amount_minor=None, amount=1999), "the line has `amount`: did you mean `amount_minor`?"),
])
def test_a_refused_line_names_the_likely_cause_and_the_fix(tmp_path, capsys, given, hint):
    status, said, summary = _publish(tmp_path, capsys, f"{_line(1)}\n{given}\n")
    first = min(said)
    assert status == 1 and hint in said[first], said
    assert all(said[n].endswith(f"(likely as line {first})") for n in said if n != first), said
    assert summary.startswith("published 1 events"), "the valid line beside it goes through"


def test_pretty_printed_json_is_told_once_and_each_later_line_points_back(tmp_path, capsys):
    pretty = json.dumps(GOOD, indent=2)
    status, said, summary = _publish(tmp_path, capsys, f"{pretty}\n{pretty}\n")
    assert status == 1 and len(said) == 2 * len(pretty.splitlines())
    assert "JSON spread over several lines (pretty-printed)" in said[1] and "jq -c . FILE" in said[1]
    assert all(said[n].endswith("(likely as line 1)") for n in said if n > 1), said
    assert "published 0 events" in summary


def test_unknown_fields_are_counted_and_reported_and_refused_with_strict(tmp_path, capsys):
    text = "\n".join([_line(1, coupon="X"), _line(2, coupon="Y", basket=3), _line(3)]) + "\n"
    status, said, summary = _publish(tmp_path, capsys, text)
    assert status == 0 and not said
    assert summary.startswith("published 3 events")
    assert "fields the contract does not know were dropped: `basket` (1 line), `coupon` (2 lines)" in summary

    status, said, summary = _publish(tmp_path, capsys, text.replace("-0000000000", "-0000000001"), "--strict")
    assert status == 1 and sorted(said) == [1, 2]
    assert said[2].startswith("fields the contract's purchase does not have: `basket`, `coupon` - at `$.basket`")
    assert summary.startswith("published 1 events")


def test_a_byte_order_mark_before_the_first_line_is_read_past(tmp_path, capsys):
    status, said, summary = _publish(tmp_path, capsys, b"\xef\xbb\xbf" + f"{_line(1)}\n{_line(2)}\n".encode())
    assert status == 0 and not said and summary.startswith("published 2 events")
