"""The value models' tables: every fit (`value_models`), what each fit read of each
partition (`value_model_partitions`), and each customer's figures from the latest fit
(`value_estimates`, shown in `customers`).

A fit is an event on the log (`ValueModelFitted`): fitting reads the purchase
summaries from `value_movements`, and applying a fit reads them again, the same rows:
the movements of the partition up to the position the fit names, dated up to its
cutoff. So live processing and a replay, which write the same movements, give every
customer the same figures (lifecycle/value_model.py computes them).

A purchase summary counts the orders bought by the cutoff, less those its refunds (known
by the cutoff) took to nothing, each on the day it was bought (UTC) with its revenue
net of those refunds; a day's orders are one purchase of their sum. Its fingerprint is
a SHA-256 of the summaries in customer order, so that a fit names the data it saw
and applying it can tell whether the data is still that.

Summaries are made in DuckDB into a temporary table and read from it in chunks of
`CHUNK_ROWS` customers, so memory stays bounded whatever the population: the fit
reads only their distinct rows with counts, and applying a fit computes and writes
figures a chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

from lifecycle.policy import Policy
from lifecycle.state import DAY, as_datetime, epoch_seconds
from lifecycle.value_model import PurchaseSummaries, figures, fit_bg_nbd, fit_gamma_gamma
from projections.arrow_rows import append
from schemas.events import FittedPartition, ValueModelFitted

FIT_NAMESPACE = uuid.UUID("a3d9c1e2-6b7f-4e0a-8c5d-9f1e2b3c4d70")
"""Fixed forever: a fit's id is a uuid5 name of what decides its figures (`fit_id`), so
fitting the same data twice gives the same id, which the log takes only once."""

TIME_UNIT: Final = "day"
"""The unit of the summaries' recency and age, and so of the fitted rates."""

DDL = (
    "CREATE TABLE IF NOT EXISTS value_models ("
    " model_id UUID PRIMARY KEY, cutoff TIMESTAMPTZ NOT NULL, time_unit VARCHAR NOT NULL,"
    " currency VARCHAR NOT NULL, policy_version VARCHAR NOT NULL,"
    " r DOUBLE NOT NULL, alpha DOUBLE NOT NULL, a DOUBLE NOT NULL, b DOUBLE NOT NULL,"
    " p DOUBLE NOT NULL, q DOUBLE NOT NULL, gamma DOUBLE NOT NULL,"
    " bg_nbd_log_likelihood DOUBLE NOT NULL, gamma_gamma_log_likelihood DOUBLE NOT NULL,"
    " customers BIGINT NOT NULL, repeat_customers BIGINT NOT NULL, fingerprint VARCHAR NOT NULL)",
    # `bg_nbd` (r, alpha, a, b as BG/NBD's) or `mbg_nbd` (the modified BG/NBD's).
    "ALTER TABLE value_models ADD COLUMN IF NOT EXISTS model VARCHAR DEFAULT 'bg_nbd'",
    "CREATE TABLE IF NOT EXISTS value_model_partitions ("
    " model_id UUID NOT NULL, log_partition VARCHAR NOT NULL, log_position BIGINT NOT NULL,"
    " data_position BIGINT NOT NULL, customers BIGINT NOT NULL, fingerprint VARCHAR NOT NULL,"
    " data_fingerprint VARCHAR, customers_without_figures BIGINT)",
    "CREATE TABLE IF NOT EXISTS value_estimates ("
    " customer_id VARCHAR NOT NULL, log_partition VARCHAR NOT NULL, model_id UUID NOT NULL,"
    " frequency INTEGER NOT NULL, recency_days INTEGER NOT NULL, age_days INTEGER NOT NULL,"
    " monetary_minor DOUBLE NOT NULL, p_alive DOUBLE, expected_purchases DOUBLE,"
    " expected_spend_minor BIGINT, model_clv_minor BIGINT)",
)

_SUMMARIES = """
WITH taken AS (
    SELECT DISTINCT event_id, customer_id, order_id, kind, occurred_at, revenue_minor
    FROM {movements}
    WHERE log_partition = $partition AND log_position <= $position AND occurred_at <= to_timestamp($cutoff)
), orders AS (
    SELECT customer_id, order_id, min(occurred_at) FILTER (WHERE kind = 'purchase') AS bought_at,
           sum(revenue_minor) FILTER (WHERE kind = 'refund') AS refunded_minor,
           sum(CASE kind WHEN 'purchase' THEN revenue_minor ELSE -revenue_minor END) AS net_minor
    FROM taken GROUP BY customer_id, order_id
), days AS (
    SELECT customer_id, floor(epoch(bought_at) / 86400)::BIGINT AS day, sum(net_minor)::BIGINT AS spend
    FROM orders WHERE bought_at IS NOT NULL AND (refunded_minor IS NULL OR net_minor > 0)
    GROUP BY customer_id, day
)
SELECT *, CASE WHEN frequency > 0 THEN repeat_spend / frequency ELSE 0.0 END AS monetary FROM (
    SELECT customer_id, count(*) - 1 AS frequency, max(day) - min(day) AS recency, $cutoff_day - min(day) AS age,
           (sum(spend) - arg_min(spend, day))::BIGINT AS repeat_spend
    FROM days GROUP BY customer_id)
ORDER BY customer_id
"""


CHUNK_ROWS = 250_000
"""Customers' summaries are read, fingerprinted and given figures this many at a time,
so that memory stays bounded whatever the population."""


@dataclass(frozen=True)
class SummaryChunk:
    """The purchase summaries of consecutive customers of one partition, in customer order."""

    customer_ids: pa.Array
    summaries: PurchaseSummaries
    repeat_spend: np.ndarray


class _Fingerprint:
    """SHA-256 of a partition's summaries in customer order, fed a chunk at a time:
    every id followed by a newline in one stream, every row's (frequency, recency, age,
    repeat spend) as little-endian int64 in another, so that how the rows were chunked
    does not count."""

    def __init__(self) -> None:
        self.ids, self.numbers = hashlib.sha256(), hashlib.sha256()

    def add(self, chunk: SummaryChunk) -> None:
        self.ids.update("".join(f"{c}\n" for c in chunk.customer_ids.to_pylist()).encode())
        counted = chunk.summaries
        rows = np.column_stack([counted.frequency, counted.recency, counted.age, chunk.repeat_spend])
        self.numbers.update(rows.astype("<i8").tobytes())

    def hexdigest(self) -> str:
        return hashlib.sha256(b"purchase-summaries-v1\n" + self.ids.digest() + self.numbers.digest()).hexdigest()


@contextmanager
def _summarised(
    connection: duckdb.DuckDBPyConnection, partition: str, position: int, cutoff: int, movements: str,
) -> Iterator[int]:
    """The summaries as of `cutoff` (epoch seconds) of the movements of `partition` up
    to `position`, from `movements` (a table, or SQL for the same columns), in the temp
    table `_summaries`, numbered `n` in customer order, while in the block: how many."""
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE _summaries AS SELECT row_number() OVER (ORDER BY customer_id) - 1 AS n, * "
        f"FROM ({_SUMMARIES.format(movements=movements)}) ORDER BY n",
        {"partition": partition, "position": position, "cutoff": cutoff, "cutoff_day": cutoff // DAY},
    )
    try:
        yield connection.execute("SELECT count(*) FROM _summaries").fetchall()[0][0]
    finally:
        connection.execute("DROP TABLE IF EXISTS _summaries")


def _chunks(connection: duckdb.DuckDBPyConnection, count: int) -> Iterator[SummaryChunk]:
    for start in range(0, count, CHUNK_ROWS):
        rows = connection.sql(
            "SELECT customer_id, frequency, recency, age, repeat_spend, monetary FROM _summaries "
            "WHERE n >= $start AND n < $end ORDER BY n", params={"start": start, "end": start + CHUNK_ROWS},
        ).to_arrow_table()
        frequency, recency, age, repeat_spend = (
            rows.column(name).to_numpy().astype(np.int64) for name in ("frequency", "recency", "age", "repeat_spend")
        )
        monetary = rows.column("monetary").to_numpy().astype(np.float64)
        yield SummaryChunk(rows.column("customer_id").combine_chunks(),
                           PurchaseSummaries(frequency, recency, age, monetary), repeat_spend)


def fit_event(
    connection: duckdb.DuckDBPyConnection, cutoff: int, positions: dict[str, int], policy: Policy, source: str
) -> ValueModelFitted:
    """Fit the models to the summaries of every partition up to its position in
    `positions`, as of `cutoff`: the event that records the fit (not yet on the log).
    `ModelNotFitted` if the data cannot support a fit. The likelihoods read the
    distinct summaries with their counts, never every customer's at once."""
    connection.execute("CREATE OR REPLACE TEMP TABLE _fit_rows (frequency BIGINT, recency BIGINT, age BIGINT,"
                       " monetary DOUBLE)")
    data = {}
    for partition, position in sorted(positions.items()):
        with _summarised(connection, partition, position, cutoff, "value_movements") as count:
            fingerprint = _Fingerprint()
            for chunk in _chunks(connection, count):
                fingerprint.add(chunk)
            connection.execute("INSERT INTO _fit_rows SELECT frequency, recency, age, monetary FROM _summaries")
        data[partition] = FittedPartition(position, count, fingerprint.hexdigest())
    try:
        rates = _weighted(connection, "SELECT frequency AS f, recency AS r, age AS a, 0.0 AS m, count(*) AS w "
                                      "FROM _fit_rows GROUP BY ALL")
        spends = _weighted(connection, "SELECT frequency AS f, 0 AS r, 0 AS a, monetary AS m, count(*) AS w "
                                       "FROM _fit_rows WHERE frequency > 0 AND monetary > 0 GROUP BY ALL")
    finally:
        connection.execute("DROP TABLE IF EXISTS _fit_rows")
    bg_nbd, bg_nbd_ll = fit_bg_nbd(rates, modified=policy.value_model.model == "mbg_nbd")
    gamma_gamma, gamma_gamma_ll = fit_gamma_gamma(spends)
    at, fingerprint = as_datetime(cutoff), data_fingerprint(data)
    return ValueModelFitted(
        event_id=fit_id(at, fingerprint, policy), occurred_at=at, source=source, time_unit=TIME_UNIT,
        currency=policy.value.base_currency, policy_version=policy.version,
        bg_nbd=bg_nbd, gamma_gamma=gamma_gamma,
        bg_nbd_log_likelihood=bg_nbd_ll, gamma_gamma_log_likelihood=gamma_gamma_ll,
        customers=rates.customers(), repeat_customers=rates.customers(rates.frequency > 0),
        fingerprint=fingerprint, data=data, model=policy.value_model.model,
    )


def data_fingerprint(data: dict[str, FittedPartition]) -> str:
    """SHA-256 of the data a fit read: each partition's name (so that two partitions'
    summaries stay apart), customers and summaries' fingerprint. Not the positions it
    read up to: any append moves them, the fit's own included, while the data stays."""
    lines = "".join(f"{json.dumps(name)} {read.customers} {read.fingerprint}\n" for name, read in sorted(data.items()))
    return hashlib.sha256(b"fitted-partitions-v2\n" + lines.encode()).hexdigest()


def fit_id(cutoff: datetime, fingerprint: str, policy: Policy) -> uuid.UUID:
    """The id of a fit as of `cutoff` to the data of `fingerprint` (`data_fingerprint`)
    under `policy`: the same for any fit whose figures would be the same."""
    return uuid.uuid5(FIT_NAMESPACE, f"{TIME_UNIT}/{cutoff.isoformat()}/{fingerprint}/{policy.version}")


def _weighted(connection: duckdb.DuckDBPyConnection, query: str) -> PurchaseSummaries:
    """Distinct (frequency, recency, age, monetary) rows (`query` names them f, r, a, m)
    and how many customers each stands for (w)."""
    rows = connection.execute(f"SELECT * FROM ({query}) ORDER BY ALL").fetchnumpy()
    return PurchaseSummaries(*(np.asarray(rows[name], dtype=np.float64) for name in ("f", "r", "a", "m")),
                             weights=np.asarray(rows["w"], dtype=np.float64))


def apply_fit(
    connection: duckdb.DuckDBPyConnection, fit: ValueModelFitted, partition: str, log_position: int,
    policy: Policy, movements: str = "value_movements",
) -> None:
    """Record `fit` (at `log_position` of `partition`) and replace the figures of the
    partition's customers with its own, inside the caller's transaction."""
    record_fit(connection, fit, partition, log_position)
    if partition not in fit.data:
        return  # the partition did not exist when the fit was made: its figures stay
    connection.execute("DELETE FROM value_estimates WHERE log_partition = ?", [partition])
    fingerprint, without = estimates(connection, fit, partition, policy, movements,
                                     partial(append, connection, "value_estimates"))
    connection.execute(
        "UPDATE value_model_partitions SET data_fingerprint = ?, customers_without_figures = ? "
        "WHERE model_id = ? AND log_partition = ?",
        [fingerprint, without, fit.event_id, partition],
    )


def estimates(
    connection: duckdb.DuckDBPyConnection, fit: ValueModelFitted, partition: str, policy: Policy, movements: str,
    write: Callable[[pa.Table], None],
) -> tuple[str, int]:
    """The `value_estimates` rows of the partition's customers from `fit`, made from the
    same records the fit read and handed to `write` a chunk at a time: the fingerprint
    of those records' summaries, and how many customers got no figures."""
    read = fit.data[partition]
    fingerprint, without = _Fingerprint(), 0
    with _summarised(connection, partition, read.position, epoch_seconds(fit.occurred_at), movements) as count:
        for chunk in _chunks(connection, count):
            fingerprint.add(chunk)
            rows = estimates_table(fit, partition, chunk, policy)
            without += rows.column("p_alive").null_count
            write(rows)
    return fingerprint.hexdigest(), without


def estimates_table(fit: ValueModelFitted, partition: str, read: SummaryChunk, policy: Policy) -> pa.Table:
    """The `value_estimates` rows of the customers `read` summarises."""
    counted = read.summaries
    out = figures(fit.bg_nbd, fit.gamma_gamma, counted, policy, modified=fit.model == "mbg_nbd")
    rows = len(counted)
    return pa.table({
        "customer_id": read.customer_ids,
        "log_partition": pa.array([partition] * rows, pa.string()),
        "model_id": pa.array([fit.event_id.bytes] * rows, pa.uuid()),
        "frequency": pa.array(counted.frequency, pa.int32()),
        "recency_days": pa.array(counted.recency, pa.int32()),
        "age_days": pa.array(counted.age, pa.int32()),
        "monetary_minor": pa.array(counted.monetary, pa.float64()),
        "p_alive": pa.array(out.p_alive, pa.float64(), mask=~out.valid),
        "expected_purchases": pa.array(out.expected_purchases, pa.float64(), mask=~out.valid),
        "expected_spend_minor": pa.array(out.expected_spend_minor, pa.int64(), mask=~out.valid),
        "model_clv_minor": pa.array(out.clv_minor, pa.int64(), mask=~out.valid),
    })


def record_fit(connection: duckdb.DuckDBPyConnection, fit: ValueModelFitted, partition: str, log_position: int) -> None:
    """List `fit` in `value_models` (once) and where it is in `partition`."""
    bg, gg = fit.bg_nbd, fit.gamma_gamma
    connection.execute(
        "INSERT INTO value_models SELECT ?, to_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
        "WHERE NOT EXISTS (SELECT 1 FROM value_models WHERE model_id = ?)",
        [fit.event_id, epoch_seconds(fit.occurred_at), fit.time_unit, fit.currency, fit.policy_version,
         bg.r, bg.alpha, bg.a, bg.b, gg.p, gg.q, gg.gamma, fit.bg_nbd_log_likelihood,
         fit.gamma_gamma_log_likelihood, fit.customers, fit.repeat_customers, fit.fingerprint, fit.model,
         fit.event_id],
    )
    read = fit.data.get(partition)
    connection.execute(
        "INSERT INTO value_model_partitions VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        [fit.event_id, partition, log_position, read.position if read else 0, read.customers if read else 0,
         read.fingerprint if read else ""],
    )

