"""Consent by purpose: kept in `customers`, and on every lifecycle event, as the latest
`consent_changed` of each purpose left it when the change happened."""

from __future__ import annotations

import json

from tests.cli import lifecycle

AT = "2025-04-{:02d}T10:00:00Z"


def _event(n: int, kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, "event_id": f"00000000-0000-4000-8000-{n:012d}", "occurred_at": AT.format(n),
                       "source": "shop", "customer_id": "k", **fields})


def test_consents_are_in_customers_and_on_each_lifecycle_event(settings, tmp_path, capsys):
    lines = [
        _event(1, "consent_changed", purpose="marketing", granted=True),
        _event(2, "purchase", order_id="o-1", amount_minor=1000, currency="EUR"),
        _event(3, "consent_changed", purpose="marketing", granted=False),
        _event(4, "consent_changed", purpose="profiling", granted=True),
        _event(5, "purchase", order_id="o-2", amount_minor=1000, currency="EUR"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert lifecycle(settings, "publish", str(events)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0

    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT consents, consents->>'marketing' AS marketing FROM customers",
                     "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"consents": '{"marketing":false,"profiling":true}', "marketing": "false"}]

    assert lifecycle(settings, "tail", "customer-lifecycle") == 0
    said = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_cause = {event["caused_by"][0][-2:]: event["consents"] for event in said if event["caused_by"]}
    assert by_cause["02"] == {"marketing": True}, "as it stood when the first purchase changed the stage"
    assert by_cause["05"] == {"marketing": False, "profiling": True}
    assert all(event["schema_version"] == 3 for event in said)
