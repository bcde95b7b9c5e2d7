"""`lifecycle export --parquet DIR`: the catalog as Parquet files, for warehouse tools.

One file per table or view analysts read: `customers`, `lifecycle_transitions`,
`policies`, the time-axis table `engine_commits`, the value models' `value_models` and
`value_estimates`, and every catalog view
(projections/catalog.py). Personal data stays out: `customer_profiles` is not
exported, nor `dead_letters`, whose payloads are raw events that may hold it.

The projections are read as `lifecycle sql` reads them (locked down, read-only, from
the snapshot while a live engine runs); the rows stream through Arrow into each file,
so memory stays bounded, and each file is renamed into place only when complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from projections import catalog
from projections.query import reading

TABLES = ("customers", "lifecycle_transitions", "policies", "engine_commits", "value_models", "value_estimates",
          *catalog.VIEWS)
_BATCH_ROWS = 100_000


def export_parquet(database: Path, directory: Path) -> tuple[Path, list[tuple[str, int]]]:
    """Write each table of `TABLES` to `<directory>/<table>.parquet`: the file read
    (the database or its snapshot), and (table, rows) for each."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with reading(database) as (connection, source):
        for table in TABLES:
            target = directory / f"{table}.parquet"
            partial = directory / f".{table}.parquet.partial"
            reader = connection.sql(f"SELECT * FROM {table}").to_arrow_reader(_BATCH_ROWS)
            rows = 0
            with pq.ParquetWriter(partial, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            os.replace(partial, target)
            written.append((table, rows))
    return source, written
