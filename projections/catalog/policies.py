"""The policies the engine has decided under: each version once, with its every threshold.

Every lifecycle event names the policy version it was decided under; this table says
what that version was, so an auditor can read the rules behind a transition. A version
is bound to its content the first time it is used: deciding later under the same
version with different thresholds would make one version mean two things, and a
replay could no longer give the same answers, so it is refused.
"""

from __future__ import annotations

import duckdb

from lifecycle.policy import Policy, canonical_policy, policy_fingerprint
from projections.errors import ProjectionError

DDL = (
    "CREATE TABLE IF NOT EXISTS policies ("
    " version VARCHAR PRIMARY KEY,"
    " fingerprint VARCHAR NOT NULL,"
    " policy JSON NOT NULL)",
)


class PolicyConflict(ProjectionError):
    """A policy version was used before with other thresholds."""


def adopt(connection: duckdb.DuckDBPyConnection, policy: Policy) -> None:
    """Record `policy` if its version is new; refuse it if the version means other rules."""
    if not check(connection, policy):
        connection.execute(
            "INSERT INTO policies VALUES (?, ?, ?)",
            [policy.version, policy_fingerprint(policy), canonical_policy(policy).decode()],
        )


def check(connection: duckdb.DuckDBPyConnection, policy: Policy, table: str = "policies") -> bool:
    """Whether `policy`'s version is recorded already (with the same rules); writes
    nothing, and raises `PolicyConflict` if the version was used with other rules."""
    fingerprint = policy_fingerprint(policy)
    row = connection.execute(f"SELECT fingerprint FROM {table} WHERE version = ?", [policy.version]).fetchone()
    if row is not None and row[0] != fingerprint:
        msg = (
            f"policy version {policy.version!r} was used before with other thresholds "
            f"(recorded {row[0][:12]}, now {fingerprint[:12]}): give the changed policy a new "
            "`version`, so that each version means one set of rules (see `select * from policies`)"
        )
        raise PolicyConflict(msg)
    return row is not None
