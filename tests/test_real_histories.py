"""Real-shaped histories through the whole engine, on both logs: an old first event then
years of history, a quiet year, a clock long after the last event, a single record far
in the future, a win-back after a year away. Nothing a person would call valid is
dead-lettered or left waiting, a far-future record moves no one, and the same input
gives the same customers on Kafka (several partitions) as on the embedded log."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consumers.settings import Settings
from tests.cli import lifecycle

IDS = uuid.UUID("3f1d2b7a-4c5e-4a6b-9d8c-7e6f5a4b3c2d")
CUSTOMERS = (
    "SELECT customer_id, stage, activity, attitude, loyalty_type, loyalty_tier, value_band, relationship_level, "
    "purchases, historical_value_minor, events, win_backs, first_event_at, last_event_at, as_of "
    "FROM customers ORDER BY customer_id"
)
TRANSITIONS = (
    "SELECT event_id, customer_id, sequence, dimension, from_value, to_value, rule, occurred_at, caused_by "
    "FROM lifecycle_transitions ORDER BY customer_id, sequence"
)


class History:
    """Hand-written events, numbered in the order written."""

    def __init__(self) -> None:
        self.lines: list[dict] = []

    def _add(self, kind: str, at: str | datetime, **fields: object) -> None:
        moment = at if isinstance(at, str) else at.isoformat().replace("+00:00", "Z")
        self.lines.append({"type": kind, "event_id": str(uuid.uuid5(IDS, f"{kind}/{len(self.lines)}")),
                           "occurred_at": moment, "source": "history", **fields})

    def purchase(self, customer: str, at: str | datetime, amount: int = 2_500) -> None:
        self._add("purchase", at, customer_id=customer, order_id=f"o{len(self.lines)}", amount_minor=amount,
                  currency="EUR")

    def contact(self, customer: str, at: str | datetime) -> None:
        self._add("contact", at, customer_id=customer, channel="phone", direction="inbound")

    def clock(self, at: str | datetime) -> None:
        self._add("clock", at)

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(line) + "\n" for line in self.lines))
        return path


def _query(settings: Settings, capsys, sql: str) -> list[dict]:
    capsys.readouterr()
    assert lifecycle(settings, "sql", sql, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def _count(settings: Settings, capsys, table: str) -> int:
    return _query(settings, capsys, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def derive(settings: Settings, history: History, tmp_path: Path, capsys, *process: str) -> list[dict]:
    """Publish `history` and process it once (with `process` flags; no batch clock unless
    asked), checking that nothing was refused; the customers."""
    source = history.write(tmp_path / f"history-{len(history.lines)}.jsonl")
    assert lifecycle(settings, "publish", "--allow-future", str(source)) == 0
    assert lifecycle(settings, "process", "--once", *(process or ("--no-clock",))) == 0
    assert _count(settings, capsys, "dead_letters") == 0
    return _query(settings, capsys, CUSTOMERS)


def embedded_twin(settings: Settings, tmp_path: Path) -> Settings | None:
    """On Kafka, an embedded home to derive the same input in, to compare with."""
    return Settings(home=tmp_path / "embedded-twin") if settings.kafka else None


def check_same_on_both_logs(settings, tmp_path, capsys, history: History, *steps: tuple[str, ...]) -> None:
    """Derive `history` on an embedded twin with the same `steps` (commands after the
    publish) and compare customers and lifecycle events with `settings`' home."""
    twin = embedded_twin(settings, tmp_path)
    if twin is None:
        return
    assert lifecycle(twin, "publish", "--allow-future", str(history.write(tmp_path / "twin.jsonl"))) == 0
    for step in steps:
        assert lifecycle(twin, *step) == 0
    assert _query(twin, capsys, CUSTOMERS) == _query(settings, capsys, CUSTOMERS)
    assert _query(twin, capsys, TRANSITIONS) == _query(settings, capsys, TRANSITIONS)


def _day(start: str, days: float) -> datetime:
    return datetime.fromisoformat(start).replace(tzinfo=UTC) + timedelta(days=days)


def test_an_old_first_event_then_years_of_history(settings, tmp_path, capsys):
    """The history that lost 200 of 201 events: one contact in 2019, then 200 purchases
    of 50 customers in 2021."""
    history = History()
    history.contact("c-old", "2019-03-01T10:00:00Z")
    for n in range(200):
        history.purchase(f"c{n % 50:02d}", _day("2021-01-10", n * 1.7))
    customers = derive(settings, history, tmp_path, capsys)
    assert _count(settings, capsys, "held_records") == 0
    assert sum(row["purchases"] for row in customers) == 200 and len(customers) == 51
    assert sum(row["events"] for row in customers) == 201
    check_same_on_both_logs(settings, tmp_path, capsys, history, ("process", "--once", "--no-clock"))


def test_a_quiet_year_then_the_customers_come_back(settings, tmp_path, capsys):
    history = History()
    for n in range(90):
        history.purchase(f"q{n % 30:02d}", _day("2023-01-02", n * 2))
    for n in range(60):
        history.purchase(f"q{n % 30:02d}", _day("2024-09-01", n))
    customers = derive(settings, history, tmp_path, capsys)
    assert _count(settings, capsys, "held_records") == 0
    assert sum(row["purchases"] for row in customers) == 150
    # A year and more away: churned at the year's end (not when they came back), then won back.
    assert all(row["win_backs"] == 1 and row["activity"] == "active" for row in customers)
    churns = _query(settings, capsys, "SELECT customer_id, occurred_at, caused_by FROM lifecycle_transitions "
                                      "WHERE to_value = 'churned' ORDER BY customer_id")
    assert len(churns) == 30 and all(row["caused_by"] == [] for row in churns)
    assert all(row["occurred_at"] < "2024-09-01" for row in churns)
    check_same_on_both_logs(settings, tmp_path, capsys, history, ("process", "--once", "--no-clock"))


def test_a_clock_long_after_the_last_event_waits_then_steps_take_it(settings, tmp_path, capsys):
    history = History()
    for n in range(40):
        history.purchase(f"k{n % 8}", _day("2025-01-05", n))
    history.clock("2025-09-01T00:00:00Z")
    customers = derive(settings, history, tmp_path, capsys)
    # Five months ahead of the log's time: it waits (on every partition it reached) and
    # ages no one yet.
    waiting = _query(settings, capsys, "SELECT kind, reason FROM held_records")
    assert waiting and all(row["kind"] == "clock" and "clock dated 2025-09-01" in row["reason"] for row in waiting)
    assert all(row["as_of"] < "2025-03-01" for row in customers)
    # The engine's own clock steps there within the policy's lead, which takes it.
    assert lifecycle(settings, "clock", "--at", "2025-09-01T00:00:00Z") == 0
    assert "appended" in capsys.readouterr().err
    assert _count(settings, capsys, "held_records") == 0
    aged = _query(settings, capsys, CUSTOMERS)
    assert all(row["as_of"].startswith("2025-09-01") and row["activity"] == "dormant" for row in aged)
    check_same_on_both_logs(settings, tmp_path, capsys, history, ("process", "--once", "--no-clock"),
                            ("clock", "--at", "2025-09-01T00:00:00Z"))


def test_one_late_clock_gives_the_same_customers_on_every_log(settings, tmp_path, capsys):
    """Fifteen events of five customers and one clock 40 days after the last of them:
    on Kafka the partitions' times differ, and still every partition ends the same."""
    history = History()
    for n in range(15):
        history.purchase(f"f{n % 5}", _day("2025-02-01", n * 1.5))
    history.clock("2025-04-03T00:00:00Z")
    steps = ("process", "--once", "--clock-at", "2025-05-01T00:00:00Z")
    derive(settings, history, tmp_path, capsys, *steps[2:])
    assert _count(settings, capsys, "held_records") == 0
    check_same_on_both_logs(settings, tmp_path, capsys, history, steps)


def test_a_single_far_future_record_moves_no_one(settings, tmp_path, capsys):
    history = History()
    for n in range(30):
        history.purchase(f"p{n % 6}", _day("2025-03-01", n))
    reference = embedded_twin(settings, tmp_path) or Settings(home=tmp_path / "reference")
    before = derive(reference, history, tmp_path, capsys)
    history.purchase("p3", "2099-12-31T00:00:00Z", amount=999_999)
    history.clock("2099-12-31T00:00:00Z")
    customers = derive(settings, history, tmp_path, capsys)
    assert customers == before
    waiting = _query(settings, capsys, "SELECT customer_id, kind FROM held_records ORDER BY kind DESC")
    assert waiting[0] == {"customer_id": "p3", "kind": "event"} and {row["kind"] for row in waiting[1:]} == {"clock"}
    # Later real records of the same customer still count, the outlier still waits.
    later = History()
    later.lines = [*history.lines]
    later.purchase("p3", "2025-04-05T12:00:00Z")
    customers = derive(settings, later, tmp_path, capsys)
    (p3,) = (row for row in customers if row["customer_id"] == "p3")
    assert p3["purchases"] == 6 and p3["as_of"].startswith("2025-04-05")
    assert _query(settings, capsys, "SELECT count(*) AS n FROM held_records WHERE kind = 'event'") == [{"n": 1}]


def test_a_win_back_after_a_year_away_then_a_year_of_ordinary_customers(settings, tmp_path, capsys):
    """The hand-written history that lost 70 of its 76 events."""
    history = History()
    for day in (0, 30, 61):
        history.purchase("w-back", _day("2023-01-10", day))
    history.purchase("w-back", "2024-05-02T15:00:00Z")  # 15 months away
    for n in range(72):
        history.purchase(f"o{n % 12:02d}", _day("2024-05-03", n * 5))
    customers = derive(settings, history, tmp_path, capsys)
    assert _count(settings, capsys, "held_records") == 0
    assert sum(row["events"] for row in customers) == 76
    (back,) = (row for row in customers if row["customer_id"] == "w-back")
    assert back["win_backs"] == 1 and back["purchases"] == 4
    check_same_on_both_logs(settings, tmp_path, capsys, history, ("process", "--once", "--no-clock"))


def test_a_record_waiting_across_runs_is_taken_when_a_later_run_confirms_it(settings, tmp_path, capsys):
    """A record waiting across runs is kept in the state store, and taken in a later run
    once time is confirmed: the same customers as one run over the whole log."""
    first, rest = History(), History()
    for n in range(9):
        first.purchase(f"r{n % 3}", _day("2025-01-01", n))
    first.purchase("r9", "2026-03-01T00:00:00Z")  # waits: one customer says it is 2026
    derive(settings, first, tmp_path, capsys)
    assert _count(settings, capsys, "held_records") == 1
    rest.lines = [*first.lines]
    for n in range(9):
        rest.purchase(f"r{n % 3}", _day("2026-02-20", n))
    customers = derive(settings, rest, tmp_path, capsys)
    assert _count(settings, capsys, "held_records") == 0
    assert sum(row["purchases"] for row in customers) == 19
    if settings.kafka is None:
        assert derive(Settings(home=tmp_path / "whole"), rest, tmp_path, capsys) == customers
    # A replay of the log (which meets the waiting record in one pass) derives the same.
    assert lifecycle(settings, "verify", "--workers", "1") == 0
