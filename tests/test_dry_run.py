"""`lifecycle replay --policy NEW --dry-run` reports what the real replay then does."""

from __future__ import annotations

import json
from collections import Counter

from consumers import home
from lifecycle.population import PopulationSpec, generate
from projections.catalog.history import DIMENSIONS
from tests.cli import lifecycle
from tests.test_replay import _publish, _query

SPEC = PopulationSpec(customers=200, seed=5, days=240)
# Three purchases in the window make a loyal customer, not four.
MOVED = 'version = "test-loyal-at-3"\n[stage]\nloyal_min_purchases = 3\n'


def _stores(settings, capsys) -> tuple[dict[str, dict], set[str]]:  # type: ignore[no-untyped-def]
    rows = _query(settings, capsys, f"SELECT customer_id, {', '.join(DIMENSIONS)} FROM customer_rows")
    events = _query(settings, capsys, "SELECT event_id FROM lifecycle_transitions")
    return {row.pop("customer_id"): row for row in rows}, {row["event_id"] for row in events}


def test_a_dry_run_reports_the_counts_a_real_replay_then_gives(settings, capsys, tmp_path):
    _publish(settings, generate(SPEC))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(MOVED)
    before, before_events = _stores(settings, capsys)
    generation = home.current(settings.home)

    assert lifecycle(settings, "replay", "--dry-run", "--policy", str(policy), "--format", "json",
                     "--workers", "1") == 0
    report = json.loads(capsys.readouterr().out)
    assert home.current(settings.home) == generation and _stores(settings, capsys) == (before, before_events)
    assert lifecycle(settings, "replay", "--dry-run", "--policy", str(policy), "--workers", "1") == 0
    assert capsys.readouterr().out.startswith(
        f"dry run of policy test-loyal-at-3 over {report['events']} events: {report['customers_changed']} "
        f"customers would change; {report['lifecycle_events_added']} lifecycle events added, "
        f"{report['lifecycle_events_removed']} removed\nstage: ")

    assert lifecycle(settings, "replay", "--policy", str(policy), "--workers", "1") == 0
    after, after_events = _stores(settings, capsys)
    assert report["customers_changed"] == sum(before[c] != after[c] for c in before) > 0
    assert report["lifecycle_events_added"] == len(after_events - before_events) > 0
    assert report["lifecycle_events_removed"] == len(before_events - after_events) > 0
    for dimension in DIMENSIONS:
        moved = Counter((before[c][dimension], after[c][dimension]) for c in before)
        assert {(cell["from"], cell["to"]): cell["customers"] for cell in report["dimensions"][dimension]} == moved
    assert any(cell["from"] != cell["to"] for cell in report["dimensions"]["stage"])
    example = report["examples"][0]
    assert {d: (c["from"], c["to"]) for d, c in example["changes"].items()} == {
        d: (before[example["customer_id"]][d], after[example["customer_id"]][d])
        for d in DIMENSIONS if before[example["customer_id"]][d] != after[example["customer_id"]][d]
    }


def test_a_dry_run_refuses_a_known_version_with_other_thresholds(settings, capsys, tmp_path):
    _publish(settings, generate(PopulationSpec(customers=20, seed=1, days=30)))
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(MOVED.replace("test-loyal-at-3", "default-2026.12.07"))
    capsys.readouterr()
    assert lifecycle(settings, "replay", "--dry-run", "--policy", str(policy)) == 2
    assert "was used before with other thresholds" in capsys.readouterr().err
