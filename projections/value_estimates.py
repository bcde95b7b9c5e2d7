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
the SHA-256 of the summaries in customer order, so that a fit names the data it saw
and applying it can tell whether the data is still that.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from lifecycle.policy import Policy
from lifecycle.state import DAY, as_datetime, epoch_seconds
from lifecycle.value_model import PurchaseSummaries, figures, fit_bg_nbd, fit_gamma_gamma
from projections.arrow_rows import append
from schemas.events import FittedPartition, ValueModelFitted

FIT_NAMESPACE = uuid.UUID("a3d9c1e2-6b7f-4e0a-8c5d-9f1e2b3c4d70")
"""Fixed forever: a fit's id is a uuid5 name of its cutoff, data and policy, so fitting
the same data twice appends nothing new."""

DDL = (
    "CREATE TABLE IF NOT EXISTS value_models ("
    " model_id UUID PRIMARY KEY, cutoff TIMESTAMPTZ NOT NULL, time_unit VARCHAR NOT NULL,"
    " currency VARCHAR NOT NULL, policy_version VARCHAR NOT NULL,"
    " r DOUBLE NOT NULL, alpha DOUBLE NOT NULL, a DOUBLE NOT NULL, b DOUBLE NOT NULL,"
    " p DOUBLE NOT NULL, q DOUBLE NOT NULL, gamma DOUBLE NOT NULL,"
    " bg_nbd_log_likelihood DOUBLE NOT NULL, gamma_gamma_log_likelihood DOUBLE NOT NULL,"
    " customers BIGINT NOT NULL, repeat_customers BIGINT NOT NULL, fingerprint VARCHAR NOT NULL)",
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
SELECT customer_id, count(*) - 1 AS frequency, max(day) - min(day) AS recency, $cutoff_day - min(day) AS age,
       (sum(spend) - arg_min(spend, day))::BIGINT AS repeat_spend
FROM days GROUP BY customer_id ORDER BY customer_id
"""


@dataclass(frozen=True)
class PartitionSummaries:
    """The purchase summaries of one partition's customers, in customer order."""

    customer_ids: pa.Array
    summaries: PurchaseSummaries
    repeat_spend: np.ndarray
    fingerprint: str


def summaries(
    connection: duckdb.DuckDBPyConnection, partition: str, position: int, cutoff: int,
    movements: str = "value_movements",
) -> PartitionSummaries:
    """The summaries as of `cutoff` (epoch seconds) of the movements of `partition` up
    to `position`, from `movements` (a table, or SQL for the same columns)."""
    rows = connection.sql(
        _SUMMARIES.format(movements=movements),
        params={"partition": partition, "position": position, "cutoff": cutoff, "cutoff_day": cutoff // DAY},
    ).to_arrow_table().combine_chunks()
    frequency, recency, age, repeat_spend = (
        rows.column(name).to_numpy().astype(np.int64) for name in ("frequency", "recency", "age", "repeat_spend")
    )
    monetary = np.divide(repeat_spend, frequency, out=np.zeros(len(frequency)), where=frequency > 0)
    ids = rows.column("customer_id").combine_chunks() if rows.num_rows else pa.array([], pa.string())
    return PartitionSummaries(ids, PurchaseSummaries(frequency, recency, age, monetary), repeat_spend,
                              _fingerprint(ids, frequency, recency, age, repeat_spend))


def _fingerprint(ids: pa.Array, *columns: np.ndarray) -> str:
    digest = hashlib.sha256(b"purchase-summaries-v1\n")
    digest.update("\n".join(ids.to_pylist()).encode())
    for column in columns:
        digest.update(column.astype("<i8").tobytes())
    return digest.hexdigest()


def fit_event(
    connection: duckdb.DuckDBPyConnection, cutoff: int, positions: dict[str, int], policy: Policy, source: str
) -> ValueModelFitted:
    """Fit the models to the summaries of every partition up to its position in
    `positions`, as of `cutoff`: the event that records the fit (not yet on the log).
    `ModelNotFitted` if the data cannot support a fit."""
    parts = {partition: summaries(connection, partition, position, cutoff) for partition, position in positions.items()}
    joined = PurchaseSummaries(*(np.concatenate([getattr(p.summaries, name) for p in parts.values()])
                                 for name in ("frequency", "recency", "age", "monetary")))
    bg_nbd, bg_nbd_ll = fit_bg_nbd(joined)
    gamma_gamma, gamma_gamma_ll = fit_gamma_gamma(joined)
    data = {partition: FittedPartition(positions[partition], len(p.customer_ids), p.fingerprint)
            for partition, p in sorted(parts.items())}
    fingerprint = hashlib.sha256("\n".join(f"{k} {v.position} {v.fingerprint}" for k, v in data.items()).encode())
    at = as_datetime(cutoff)
    name = f"{at.isoformat()}/{fingerprint.hexdigest()}/{policy.version}"
    return ValueModelFitted(
        event_id=uuid.uuid5(FIT_NAMESPACE, name), occurred_at=at, source=source,
        currency=policy.value.base_currency, policy_version=policy.version,
        bg_nbd=bg_nbd, gamma_gamma=gamma_gamma,
        bg_nbd_log_likelihood=bg_nbd_ll, gamma_gamma_log_likelihood=gamma_gamma_ll,
        customers=len(joined), repeat_customers=int(np.count_nonzero(joined.frequency > 0)),
        fingerprint=fingerprint.hexdigest(), data=data,
    )


def apply_fit(
    connection: duckdb.DuckDBPyConnection, fit: ValueModelFitted, partition: str, log_position: int,
    policy: Policy, movements: str = "value_movements",
) -> None:
    """Record `fit` (at `log_position` of `partition`) and replace the figures of the
    partition's customers with its own, inside the caller's transaction."""
    record_fit(connection, fit, partition, log_position)
    read = fit.data.get(partition)
    if read is None:
        return  # the partition did not exist when the fit was made: its figures stay
    now = summaries(connection, partition, read.position, epoch_seconds(fit.occurred_at), movements)
    rows = estimates_table(fit, partition, now, policy)
    connection.execute(
        "UPDATE value_model_partitions SET data_fingerprint = ?, customers_without_figures = ? "
        "WHERE model_id = ? AND log_partition = ?",
        [now.fingerprint, rows.column("p_alive").null_count, fit.event_id, partition],
    )
    connection.execute("DELETE FROM value_estimates WHERE log_partition = ?", [partition])
    append(connection, "value_estimates", rows)


def estimates_table(fit: ValueModelFitted, partition: str, read: PartitionSummaries, policy: Policy) -> pa.Table:
    """The `value_estimates` rows of the customers `read` summarises."""
    counted = read.summaries
    out = figures(fit.bg_nbd, fit.gamma_gamma, counted, policy)
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
        "INSERT INTO value_models SELECT ?, to_timestamp(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
        "WHERE NOT EXISTS (SELECT 1 FROM value_models WHERE model_id = ?)",
        [fit.event_id, epoch_seconds(fit.occurred_at), fit.time_unit, fit.currency, fit.policy_version,
         bg.r, bg.alpha, bg.a, bg.b, gg.p, gg.q, gg.gamma, fit.bg_nbd_log_likelihood,
         fit.gamma_gamma_log_likelihood, fit.customers, fit.repeat_customers, fit.fingerprint, fit.event_id],
    )
    read = fit.data.get(partition)
    connection.execute(
        "INSERT INTO value_model_partitions VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        [fit.event_id, partition, log_position, read.position if read else 0, read.customers if read else 0,
         read.fingerprint if read else ""],
    )

