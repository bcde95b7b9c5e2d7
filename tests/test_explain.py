"""`lifecycle explain` and the two time axes, on hand-written histories, on both logs.

Three customers share one time line starting 2025-01-01 (day 0), with a clock every 30
days at noon: `w` falls asleep and is won back, `t` is reviewed down a tier on the
anniversary of joining, `l` becomes loyal and then a complaint dated before that
arrives late; `q` only called. Every expected answer below is worked out by hand from the shipped policy
(docs/rules.md).
"""

from __future__ import annotations

import getpass

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.reasons import RULES, rule_in_words
from consumers.privacy.access_log import SQLiteAccessLog
from tests.cli import lifecycle

DAY0 = datetime(2025, 1, 1, 9, tzinfo=UTC)


def _id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def _at(day: float) -> str:
    return (DAY0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")


def _event(number: int, kind: str, day: float, customer: str | None = None, **fields: object) -> dict:
    event = {"type": kind, "event_id": _id(number), "occurred_at": _at(day), "source": "test", **fields}
    if customer is not None:
        event["customer_id"] = customer
    return event


def _purchase(number: int, customer: str, day: float, amount_minor: int, margin_minor: int | None) -> dict:
    margin = {} if margin_minor is None else {"margin_minor": margin_minor}
    return _event(number, "purchase", day, customer, order_id=f"o{number}", amount_minor=amount_minor,
                  currency="EUR", **margin)


CLOCKS = {day: 900 + day for day in (*range(30, 361, 30), 367)}
HISTORY = [
    _purchase(1, "w", 0, 5_000, 1_000),
    _purchase(2, "t", 0, 110_000, 10_000),
    _event(3, "membership_joined", 1, "t", programme="club", member_id="T-1"),
    *(_purchase(10 + n, "l", 100 + 10 * n, 2_000, 200) for n in range(4)),  # days 100, 110, 120, 130
    _event(6, "contact", 5, "q", channel="phone", direction="inbound", topic="my address is 1 Main St"),
    _purchase(4, "t", 200, 40_000, 4_000),
    _purchase(5, "w", 210, 5_000, 1_000),
]
LATE_COMPLAINT = _event(20, "complaint_filed", 125, "l", complaint_id="k1", category="delivery", severity="high")


def _lines(events: list[dict]) -> str:
    clocks = [_event(number, "clock", day + 0.125) for day, number in CLOCKS.items()]
    ordered = sorted([*events, *clocks], key=lambda e: e["occurred_at"])
    return "".join(json.dumps(e) + "\n" for e in ordered)


@pytest.fixture
def processed(settings, tmp_path: Path):
    source = tmp_path / "history.jsonl"
    source.write_text(_lines(HISTORY))
    assert lifecycle(settings, "publish", str(source), "--allow-future") == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    return settings


def _explain(settings, capsys, customer: str, *flags: str) -> dict:
    capsys.readouterr()
    assert lifecycle(settings, "explain", customer, "--format", "json", *flags) == 0
    return json.loads(capsys.readouterr().out)


def _moves(document: dict, dimension: str | None = None) -> list[tuple]:
    return [
        (t["sequence"], t["dimension"], t["from_value"], t["to_value"], t["rule"],
         [(c["event_id"], c["type"], c["occurred_at"]) for c in t["caused_by"]])
        for t in document["transitions"] if dimension in (None, t["dimension"])
    ]


TIME: list[tuple] = []
"""The causes of a change time alone brought: none (it is dated at the threshold itself,
whichever clock revealed it)."""


def _bought(number: int, day: float) -> list[tuple]:
    return [(_id(number), "purchase", _at(day))]


def test_a_win_back_is_explained_with_its_rules_causes_and_facts(processed, capsys):
    document = _explain(processed, capsys, "w")
    assert _moves(document) == [
        (1, "stage", "prospect", "first_time", "stage.first_purchase", _bought(1, 0)),
        (2, "activity", "active", "drowsy", "activity.drowsy_by_fixed_thresholds", TIME),
        (3, "activity", "drowsy", "half_asleep", "activity.half_asleep_by_fixed_thresholds", TIME),
        (4, "activity", "half_asleep", "dormant", "activity.dormant_by_fixed_thresholds", TIME),
        (5, "stage", "first_time", "repeat", "stage.repeat_purchases", _bought(5, 210)),
        (6, "activity", "dormant", "active", "activity.win_back", _bought(5, 210)),
        # Silent again since day 210, with two purchases: still no rhythm of their own.
        (7, "activity", "active", "drowsy", "activity.drowsy_by_fixed_thresholds", TIME),
        (8, "activity", "drowsy", "half_asleep", "activity.half_asleep_by_fixed_thresholds", TIME),
    ]
    dormant = document["transitions"][3]
    assert dormant["facts"]["days_silent"] == 180 and dormant["facts"]["dormant_after_days"] == 180
    assert dormant["facts"]["basis"] == "fixed_thresholds"
    assert dormant["thresholds"]["activity"]["dormant_days"] == 180
    assert "dormant" in dormant["rule_text"] and dormant["policy_version"] == "default-2026.12.07"
    assert document["transitions"][5]["caused_by"][0]["payload"]["amount_minor"] == 5_000
    assert document["state"]["activity"] == "half_asleep" and document["state"]["win_backs"] == 1


def test_a_tier_goes_down_only_at_the_review_on_the_anniversary(processed, capsys):
    document = _explain(processed, capsys, "t")
    assert [m[1:] for m in _moves(document, "loyalty_tier")] == [
        ("loyalty_tier", "none", "gold", "loyalty_tier.points_earned",
         [(_id(3), "membership_joined", _at(1))]),
        # The first purchase left the points window on day 365; the tier waits for the review.
        ("loyalty_tier", "gold", "silver", "loyalty_tier.anniversary_review", TIME),
    ]
    review = [t for t in document["transitions"] if t["rule"] == "loyalty_tier.anniversary_review"][0]
    assert review["facts"] == {"points": 400, "earned_tier": "silver", "member": True, "review": True}


def test_a_late_complaint_is_explained_at_its_own_date(processed, capsys, tmp_path):
    late = tmp_path / "late.jsonl"
    late.write_text(json.dumps(LATE_COMPLAINT) + "\n")
    assert lifecycle(processed, "publish", str(late), "--allow-future") == 0
    assert lifecycle(processed, "process", "--once", "--no-clock") == 0
    assert [m[2:] for m in _moves(_explain(processed, capsys, "l"), "stage")] == [
        ("prospect", "first_time", "stage.first_purchase", _bought(10, 100)),
        ("first_time", "repeat", "stage.repeat_purchases", _bought(11, 110)),
        ("repeat", "loyal", "stage.loyal_regular_purchases", _bought(13, 130)),
        # Recorded after day 367, dated day 125: an open complaint is not loyal.
        ("loyal", "repeat", "stage.repeat_purchases", [(_id(20), "complaint_filed", _at(125))]),
    ]


def test_as_of_counts_a_late_event_and_known_at_does_not(processed, capsys, tmp_path):
    said = datetime.now(UTC)
    late = tmp_path / "late.jsonl"
    late.write_text(json.dumps(LATE_COMPLAINT) + "\n")
    assert lifecycle(processed, "publish", str(late), "--allow-future") == 0
    assert lifecycle(processed, "process", "--once", "--no-clock") == 0
    day131 = _at(131)
    # As of day 131, as the log is known now: the complaint of day 125 ended the loyalty.
    assert _explain(processed, capsys, "l", "--as-of", day131)["state"]["stage"] == "repeat"
    # What the engine had said before the complaint arrived: loyal since day 130.
    known = _explain(processed, capsys, "l", "--known-at", said.isoformat())
    assert known["state"]["stage"] == "loyal"
    assert [t["to_value"] for t in known["transitions"] if t["dimension"] == "stage"][-1] == "loyal"
    # Before anything: the customer is unknown on that axis.
    assert lifecycle(processed, "explain", "l", "--as-of", _at(-1)) == 1
    # The same answers in SQL, for analysts.
    capsys.readouterr()
    assert lifecycle(processed, "sql", f"SELECT stage FROM customers_as_of('{day131}') WHERE customer_id = 'l' "
                     f"UNION ALL SELECT stage FROM customers_known_at('{said.isoformat()}') "
                     "WHERE customer_id = 'l'", "--format", "json") == 0
    assert [row["stage"] for row in json.loads(capsys.readouterr().out)] == ["repeat", "loyal"]


def test_an_unknown_customer_is_a_clear_message_and_exit_1(processed, capsys):
    assert lifecycle(processed, "explain", "nobody") == 1
    assert "no customer 'nobody'" in capsys.readouterr().err


def test_the_text_story_masks_personal_data_unless_asked(processed, capsys):
    capsys.readouterr()
    assert lifecycle(processed, "explain", "w", "--as-of", _at(400)) == 0
    text = capsys.readouterr().out
    assert text.startswith("customer w, as of 2026-02-05T09:00:00Z: stage repeat, activity half_asleep,")
    assert "rule activity.win_back: " in text and "caused by purchase " + _id(5) in text
    assert "caused by time alone: the threshold was reached at 2025-03-02T09:00:00Z" in text
    assert lifecycle(processed, "explain", "q") == 0
    text = capsys.readouterr().out
    assert "topic=(sealed)" in text and "Main St" not in text, "free text is sealed on the log"
    assert not SQLiteAccessLog(processed.home).reads("q"), "a masked read opens nothing"
    assert lifecycle(processed, "explain", "q", "--show-personal", "--role", "privacy") == 0
    assert "topic=my address is 1 Main St" in capsys.readouterr().out
    [(_, reader, role, command, customer, fields)] = SQLiteAccessLog(processed.home).reads("q")
    assert (reader, role, command, customer, fields) == (getpass.getuser(), "privacy", "explain", "q", "topic")


def test_every_rule_id_has_words_and_is_in_the_rules_reference():
    documented = set(re.findall(r"`((?:stage|activity|loyalty_type|loyalty_tier|value_band|relationship_level)"
                                r"\.[a-z_]+)`", (Path(__file__).parent.parent / "docs" / "rules.md").read_text()))
    assert documented == set(RULES)
    assert rule_in_words("stage.made_up").startswith("a rule this version of the engine does not know")
