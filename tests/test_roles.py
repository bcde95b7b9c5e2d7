"""Each role reads what the roles file grants it, from where the data is: an analyst every
customer with personal data sealed; a privacy officer may open it, each read recorded;
a partner only its own customers, from a snapshot that holds nothing of the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from tests.cli import lifecycle

PARTNER = "dealer-north"
ROLES = f"""
default = "analyst"
[roles.analyst]
[roles.privacy]
personal = "clear"
[roles.{PARTNER}]
[roles.{PARTNER}.grant]
sources = ["{PARTNER}"]
"""


@pytest.fixture
def partnered(settings: Settings, tmp_path: Path) -> tuple[Settings, set[str], set[str]]:
    """A population where some customers also visited the partner: (settings, the
    partner's customers, everyone)."""
    lines = [json.loads(line) for line in generate(PopulationSpec(customers=60, seed=4, days=120))]
    everyone = {e["customer_id"] for e in lines if "customer_id" in e}
    theirs = set(sorted(everyone)[::7])
    lines += [{"type": "visit", "event_id": f"00000000-0000-4000-8000-{n:012d}", "occurred_at": "2025-03-01T12:00:00Z",
               "source": PARTNER, "customer_id": customer, "place": "store"} for n, customer in enumerate(sorted(theirs))]
    events, roles = tmp_path / "events.jsonl", tmp_path / "roles.toml"
    events.write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
    roles.write_text(ROLES, encoding="utf-8")
    settings = Settings(home=settings.home, kafka=settings.kafka, partitions=settings.partitions, roles=roles)
    assert lifecycle(settings, "publish", str(events)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    return settings, theirs, everyone


def _sql(settings: Settings, capsys, query: str, *role: str) -> list[dict]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert lifecycle(settings, "sql", query, "--format", "json", *role) == 0
    return json.loads(capsys.readouterr().out)


def _ids(settings: Settings, capsys, table: str, *role: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {row["customer_id"] for row in _sql(settings, capsys, f"SELECT customer_id FROM {table}", *role)}


def test_a_partner_reads_only_its_customers_everywhere(partnered, capsys, tmp_path):
    settings, theirs, everyone = partnered
    role = ("--role", PARTNER)
    assert _ids(settings, capsys, "customers") == everyone, "the analyst sees every customer"
    assert _ids(settings, capsys, "customers", *role) == theirs
    for table in ("lifecycle_transitions", "value_movements", "customer_rfm", "held_records"):
        assert _ids(settings, capsys, table, *role) <= theirs, table
    assert _ids(settings, capsys, "lifecycle_transitions", *role), "their customers' history is there"
    for table in ("customer_profiles", "dead_letters", "engine_commits", "value_models", "tracking"):
        assert _sql(settings, capsys, f"SELECT count(*) AS n FROM {table}", *role) == [{"n": 0}], table

    assert lifecycle(settings, "export", "--parquet", str(tmp_path / "export"), *role) == 0
    assert set(pq.read_table(tmp_path / "export" / "customers.parquet")["customer_id"].to_pylist()) == theirs
    assert set(pq.read_table(tmp_path / "export" / "lifecycle_transitions.parquet")["customer_id"].to_pylist()) <= theirs

    assert lifecycle(settings, "report", "--out", str(tmp_path / "report.html"), *role) == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    funnel = html[html.index("<th>customers now</th>"):]
    funnel = funnel[:funnel.index("</table>")]
    assert sum(int(n) for n in re.findall(r"<tr><td>[a-z_]+</td><td>(\d+)</td>", funnel)) == len(theirs)

    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-lifecycle", *role) == 0
    tailed = {json.loads(line)["customer_id"] for line in capsys.readouterr().out.splitlines()}
    assert tailed == _ids(settings, capsys, "lifecycle_transitions", *role)
    assert lifecycle(settings, "tail", "customer-events", *role) == 2, "raw events are everyone's"

    other = sorted(everyone - theirs)[0]
    assert lifecycle(settings, "explain", other, *role) == 1, "the others do not exist for it"
    assert lifecycle(settings, "explain", sorted(theirs)[0], *role) == 0
    assert lifecycle(settings, "explain", sorted(theirs)[0], "--show-personal", *role) == 2


def test_an_analyst_sees_personal_data_sealed_and_only_the_privacy_role_opens_it(partnered, capsys):
    settings, _, _ = partnered
    profiles = _sql(settings, capsys, "SELECT customer_id, email FROM customer_profiles WHERE email IS NOT NULL")
    assert profiles and all(row["email"].startswith("sealed:") and "@" not in row["email"] for row in profiles)
    customer = profiles[0]["customer_id"]
    capsys.readouterr()
    assert lifecycle(settings, "explain", customer, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["profile"]["email"] == "(sealed)"
    assert lifecycle(settings, "explain", customer, "--format", "json", "--show-personal", "--role", "privacy") == 0
    assert "@" in json.loads(capsys.readouterr().out)["profile"]["email"]


def test_a_bad_roles_file_is_refused_with_where_and_what(tmp_path, capsys):
    for text, says in (("default = 'nobody'\n[roles.analyst]\n", "default = 'nobody' is not one of its roles"),
                       ("default = 'p'\n[roles.p]\npersonal = 'clear'\n[roles.p.grant]\nsources = ['x']\n",
                        "a partner never reads personal data in clear"),
                       ("default = 'p'\n[roles.p]\n[roles.p.grant]\n", "has an empty grant"),
                       ("default = 'a'\n[roles.a]\npersonal = 'maybe'\n", "Invalid enum value 'maybe'")):
        roles = tmp_path / "roles.toml"
        roles.write_text(text, encoding="utf-8")
        settings = Settings(home=tmp_path / "home", roles=roles)
        capsys.readouterr()
        assert lifecycle(settings, "process", "--once", "--no-clock") == 2
        err = capsys.readouterr().err
        assert str(roles) in err and says in err, err
