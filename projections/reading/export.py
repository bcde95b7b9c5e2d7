"""`lifecycle export --parquet DIR`: the catalog as Parquet files, for warehouse tools.

One file per table or view analysts read: `customers`, `lifecycle_transitions`,
`value_movements` (each purchase and refund with what it moved), `policies`, the
time-axis table `engine_commits`, the value models' `value_models` and
`value_estimates`, and every catalog view
(projections/catalog/views.py). Personal data stays out: `customer_profiles` is not
exported, nor `dead_letters`, whose payloads are raw events that may hold it.

The projections are read as `lifecycle sql` reads them (locked down, read-only, from
the snapshot while a live engine runs); the rows stream through Arrow into each file,
so memory stays bounded.

An export is all or nothing: it is written beside the directory asked for
(`.<name>.export-partial`), with a `manifest.json` last (each table's rows, the log
positions the projections reflect, when), and renamed into place only when complete;
the export it replaces is moved aside first (`.<name>.export-previous`) and removed
after. Killed at any moment, the directory holds a whole export, or is missing with the
previous one whole beside it, which the next export puts back before it starts. A
directory that holds files but no manifest is not an export, and is never replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from projections.catalog import customer_facts
from projections.catalog import trends
from projections.catalog import views as catalog
from projections.errors import ProjectionError
from projections.reading.query import reading

TABLES = ("customers", "lifecycle_transitions", "value_movements", "customer_facts", "policies", "engine_commits", "value_models", "value_estimates",
          *catalog.VIEWS, *trends.VIEWS, *customer_facts.VIEWS)
MANIFEST = "manifest.json"
_BATCH_ROWS = 100_000


def export_parquet(database: Path, directory: Path,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Path, list[tuple[str, int]]]:
    """Write each table of `TABLES` to `<directory>/<table>.parquet`, all or nothing: the
    file read (the database or its snapshot), and (table, rows) for each."""
    staging, previous = (directory.parent / f".{directory.name}.export-{what}" for what in ("partial", "previous"))
    _recover(directory, previous)
    _check_replaceable(directory)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    with reading(database) as (connection, source):
        written = []
        for table in TABLES:
            written.append((table, _write(connection, table, staging)))
            if progress is not None:
                progress(len(written), len(TABLES))
        positions = dict(connection.execute("SELECT application_name, max(notification_id) FROM tracking "
                                            "GROUP BY 1 ORDER BY 1").fetchall())
    manifest = {"tables": dict(written), "positions": positions, "source": source.name,
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if directory.exists():
        os.replace(directory, previous)
    os.replace(staging, directory)
    shutil.rmtree(previous, ignore_errors=True)
    return source, written


def _write(connection: duckdb.DuckDBPyConnection, table: str, staging: Path) -> int:
    reader = connection.sql(f"SELECT * FROM {table}").to_arrow_reader(_BATCH_ROWS)
    rows = 0
    with pq.ParquetWriter(staging / f"{table}.parquet", reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _recover(directory: Path, previous: Path) -> None:
    """An export killed between its two renames left the one before beside: put it back."""
    if previous.exists() and not directory.exists():
        os.replace(previous, directory)


def _check_replaceable(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST).exists():
        msg = (f"{directory} holds files but is not an export of `lifecycle export` (no {MANIFEST}): it is left "
               "alone; export to a new or empty directory")
        raise ProjectionError(msg)
