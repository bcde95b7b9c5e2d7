"""A scratch DuckDB database that attaches the live projections read-only.

Where a replay's parts (projections/bulk/parts.py) are compared with the live stores, by
`lifecycle verify` (projections/bulk/verification.py) and the policy dry run
(projections/bulk/policy_diff.py): DuckDB spills to the scratch file beyond its memory
limit, so the comparison's memory is bounded whatever the population.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from duckdb import DuckDBPyConnection

from projections.bulk.parts import MEMORY_LIMIT

__all__ = ["DuckDBPyConnection", "open_comparison"]


def open_comparison(scratch: Path, live_views: Path) -> DuckDBPyConnection:
    """A new database at `scratch`, with `live_views` attached read-only as `live`."""
    connection = duckdb.connect(str(scratch), config={"memory_limit": MEMORY_LIMIT})
    quoted = str(live_views).replace("'", "''")
    connection.execute(f"ATTACH '{quoted}' AS live (READ_ONLY)")
    return connection
