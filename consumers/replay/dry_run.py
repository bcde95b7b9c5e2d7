"""`lifecycle replay --policy NEW.toml --dry-run`: what a policy change would do.

The log is replayed under the new policy into a scratch place (consumers/replay/scratch.py)
and compared with the live stores (projections/bulk/policy_diff.py): per dimension, a from/to
matrix of customers' current values, the lifecycle events added and removed, a few
example customers. Nothing live is touched. A policy whose version the live stores know
with other thresholds is refused first, as the real replay would refuse it.
"""

from __future__ import annotations

from typing import Any

from consumers import home
from consumers.replay import Progress
from consumers.replay.scratch import scratch_replay
from consumers.settings import Settings
from lifecycle.policy import Policy
from projections.catalog import policies
from projections.bulk.policy_diff import policy_diff
from projections.reading.query import connect_read_only


def dry_run(settings: Settings, policy: Policy, workers: int, progress: Progress | None = None) -> dict[str, Any]:
    settings.require_home()
    generation = home.current(settings.home)
    if generation is not None and (generation / home.VIEWS).exists():
        connection = connect_read_only(generation / home.VIEWS)
        try:
            policies.check(connection, policy)
        finally:
            connection.close()
    with scratch_replay(settings, policy, workers, progress) as replayed:
        connection = replayed.compare()
        try:
            report = policy_diff(connection, replayed.parts)
        finally:
            connection.close()
    return {"policy_version": policy.version, "events": replayed.report.records, **report}


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"dry run of policy {report['policy_version']} over {report['events']} events: "
        f"{report['customers_changed']} customers would change; "
        f"{report['lifecycle_events_added']} lifecycle events added, {report['lifecycle_events_removed']} removed"
    ]
    for dimension, cells in report["dimensions"].items():
        same = sum(c["customers"] for c in cells if c["from"] == c["to"])
        moves = [f"{c['from']} -> {c['to']} {c['customers']}" for c in cells if c["from"] != c["to"]]
        lines.append(f"{dimension}: {same} unchanged" + "".join(f"; {move}" for move in moves))
    for example in report["examples"]:
        changes = ", ".join(f"{d} {c['from']} -> {c['to']}" for d, c in example["changes"].items())
        lines.append(f"for example {example['customer_id']}: {changes}")
    return "\n".join(lines)
