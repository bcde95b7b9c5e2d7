"""The segment catalog for analysts: views over the projections (docs/catalog.md).

The segmentations the domain is built on (docs/domain.md sections 2-5) depend on the whole
population (a quintile, the customers that bring 80% of the value), so they are
computed over the customer set, in DuckDB, when queried, never per event: views cost
the engine nothing (cohort retention reads `value_movements`, which the engine appends
to with each batch: projections/catalog/value_movements.py). Each view's definition is documented in docs/catalog.md, and tested
on hand-written populations. Times are UTC; days are UTC dates.
"""

from __future__ import annotations

from lifecycle.stage import LADDER
from projections.catalog.history import DIMENSIONS

_LADDER = ", ".join(f"('{stage}', {rung})" for rung, stage in enumerate(LADDER, start=1))
_START = {"stage": LADDER[0], "activity": "active"}


def _score(column: str, order: str) -> str:
    """1-5 by the customer's place among all buyers; equal values share a score."""
    return f"least(5, 1 + CAST(floor(5 * percent_rank() OVER (ORDER BY {column} {order})) AS INTEGER))"


_RFM = f"""
CREATE OR REPLACE VIEW customer_rfm AS
WITH buyers AS (
  SELECT customer_id,
    date_diff('day', last_purchase_at, (SELECT max(as_of) FROM customers)) AS recency_days,
    purchases AS frequency, historical_value_minor AS monetary_minor
  FROM customers WHERE purchases > 0 AND last_purchase_at IS NOT NULL),
scored AS (
  SELECT *, {_score('recency_days', 'DESC')} AS r_score, {_score('frequency', 'ASC')} AS f_score,
    {_score('monetary_minor', 'ASC')} AS m_score
  FROM buyers)
SELECT *, CASE
    WHEN r_score >= 4 AND f_score >= 4 THEN 'champions'
    WHEN r_score >= 4 AND f_score >= 2 THEN 'potential_loyalists'
    WHEN r_score >= 4 THEN 'new_customers'
    WHEN r_score = 3 AND f_score >= 4 THEN 'loyal'
    WHEN r_score = 3 THEN 'need_attention'
    WHEN f_score >= 3 THEN 'at_risk'
    ELSE 'hibernating' END AS segment
FROM scored
"""

_PYRAMID = """
CREATE OR REPLACE VIEW value_pyramid AS
WITH valued AS (
  SELECT customer_id, historical_value_minor AS value_minor, greatest(historical_value_minor, 0) AS counted
  FROM customers),
running AS (
  SELECT *, sum(counted) OVER (ORDER BY counted DESC, customer_id ROWS UNBOUNDED PRECEDING) - counted AS before,
    sum(counted) OVER () AS total
  FROM valued)
SELECT customer_id, value_minor,
  CASE WHEN total > 0 THEN counted / total ELSE 0 END AS share,
  CASE WHEN total > 0 THEN (before + counted) / total ELSE 0 END AS cumulative_share,
  CASE WHEN counted > 0 AND before < 0.80 * total THEN 'A'
       WHEN counted > 0 AND before < 0.95 * total THEN 'B' ELSE 'C' END AS abc_class,
  CASE WHEN counted > 0 AND before < 0.80 * total THEN 'key'
       WHEN counted > 0 AND before < 0.95 * total THEN 'normal' ELSE 'small' END AS segment
FROM running
"""

_LOYALTY_MATRIX = """
CREATE OR REPLACE VIEW loyalty_matrix AS
SELECT attitude,
  CASE WHEN loyalty_type IN ('true', 'spurious') THEN 'high' ELSE 'low' END AS repeat_behaviour,
  loyalty_type, count(*) AS customers
FROM customers GROUP BY ALL
"""

_FUNNEL = f"""
CREATE OR REPLACE VIEW stage_funnel AS
WITH ladder(stage, rung) AS (VALUES {_LADDER}),
best AS (
  SELECT customer_id, max(rung) AS rung FROM (
    SELECT customer_id, stage FROM customer_rows
    UNION ALL SELECT customer_id, to_value FROM lifecycle_transitions WHERE dimension = 'stage'
  ) JOIN ladder USING (stage) GROUP BY customer_id),
reached AS (
  SELECT l.rung, l.stage, (SELECT count(*) FROM best b WHERE b.rung >= l.rung) AS reached FROM ladder l)
SELECT r.rung, r.stage,
  (SELECT count(*) FROM customer_rows c WHERE c.stage = r.stage) AS customers_now,
  r.reached,
  CASE WHEN lag(r.reached) OVER (ORDER BY r.rung) > 0
       THEN r.reached / lag(r.reached) OVER (ORDER BY r.rung) END AS conversion
FROM reached r ORDER BY r.rung
"""


def _daily(dimension: str) -> str:
    """Each value's intervals: a lifecycle event's value holds from its date until a later
    event of the customer (higher sequence) is dated earlier or later - the as-of rule of
    projections/catalog/history.py, day by day - and the starting value from the first event."""
    return f"""
SELECT '{dimension}' AS dimension, to_value AS value, occurred_at AS since,
  min(occurred_at) OVER (PARTITION BY customer_id ORDER BY sequence
                         ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS until
FROM lifecycle_transitions WHERE dimension = '{dimension}'
UNION ALL
SELECT '{dimension}', '{_START[dimension]}', c.first_event_at,
  (SELECT min(t.occurred_at) FROM lifecycle_transitions t
   WHERE t.customer_id = c.customer_id AND t.dimension = '{dimension}')
FROM customer_rows c WHERE c.first_event_at IS NOT NULL"""


_DAILY = f"""
CREATE OR REPLACE VIEW daily_lifecycle_counts AS
WITH spans AS ({_daily('stage')} UNION ALL {_daily('activity')}),
days AS (
  SELECT CAST(timezone('UTC', since) AS DATE) AS first_day, CAST(timezone('UTC', until) AS DATE) AS end_day, *
  FROM spans),
held AS (SELECT * FROM days WHERE end_day IS NULL OR end_day > first_day),
deltas AS (
  SELECT first_day AS day, dimension, value, 1 AS delta FROM held
  UNION ALL SELECT end_day, dimension, value, -1 FROM held WHERE end_day IS NOT NULL),
last_day AS (SELECT CAST(timezone('UTC', max(as_of)) AS DATE) AS day FROM customers),
calendar AS (
  SELECT CAST(unnest(range(min(first_day), greatest(max(first_day), (SELECT day FROM last_day))
                             + INTERVAL 1 DAY, INTERVAL 1 DAY)) AS DATE) AS day
  FROM held),
values_seen AS (SELECT DISTINCT dimension, value FROM held)
SELECT calendar.day, v.dimension, v.value,
  CAST(sum(coalesce(d.delta, 0)) OVER (PARTITION BY v.dimension, v.value ORDER BY calendar.day) AS BIGINT)
    AS customers
FROM calendar CROSS JOIN values_seen v
LEFT JOIN (SELECT day, dimension, value, sum(delta) AS delta FROM deltas GROUP BY ALL) d
  ON d.day = calendar.day AND d.dimension = v.dimension AND d.value = v.value
"""

_SATISFACTION = """
CREATE OR REPLACE VIEW satisfaction AS
SELECT
  count(latest_csat) AS surveyed_csat,
  count(*) FILTER (WHERE latest_csat >= 4) AS satisfied,
  100.0 * count(*) FILTER (WHERE latest_csat >= 4) / nullif(count(latest_csat), 0) AS satisfaction_rate_pct,
  avg(latest_csat) AS csat_mean,
  count(latest_nps) AS surveyed_nps,
  100.0 * (count(*) FILTER (WHERE latest_nps >= 9) - count(*) FILTER (WHERE latest_nps <= 6))
    / nullif(count(latest_nps), 0) AS nps,
  sum(complaints_filed) AS complaints_filed,
  sum(open_complaints) AS complaints_open,
  sum(complaints_resolved) AS complaints_resolved,
  sum(resolve_seconds_total) / nullif(sum(complaints_resolved), 0) / 86400.0 AS mean_days_to_resolve,
  100.0 * sum(recoveries_satisfied) / nullif(sum(complaints_resolved), 0) AS recovery_rate_pct
FROM customers
"""

# A purchase counts in its month whatever happens to it later: the engine's rule of
# which purchases count (not fully refunded, within the refund window) stays in
# lifecycle/, and is not repeated here.
_COHORTS = """
CREATE OR REPLACE VIEW cohort_retention AS
WITH purchases AS (
  SELECT DISTINCT customer_id, date_trunc('month', timezone('UTC', occurred_at)) AS month
  FROM value_movements WHERE kind = 'purchase'),
cohorts AS (SELECT customer_id, min(month) AS cohort FROM purchases GROUP BY customer_id),
sizes AS (SELECT cohort, count(*) AS cohort_customers FROM cohorts GROUP BY cohort),
buying AS (
  SELECT c.cohort, p.month, count(*) AS customers_buying
  FROM cohorts c JOIN purchases p USING (customer_id) GROUP BY c.cohort, p.month)
SELECT CAST(b.cohort AS DATE) AS cohort_month, CAST(date_diff('month', b.cohort, b.month) AS INTEGER) AS months_after,
  s.cohort_customers, b.customers_buying, b.customers_buying / s.cohort_customers AS retention
FROM buying b JOIN sizes s USING (cohort)
ORDER BY cohort_month, months_after
"""

# Current value against potential (docs/domain.md section 4): the model's CLV is the
# potential; each axis splits at its median over the customers with a figure.
_VALUE_MATRIX = """
CREATE OR REPLACE VIEW value_matrix AS
WITH valued AS (
  SELECT customer_id, current_value_minor, model_clv_minor AS potential_minor, p_alive
  FROM customers WHERE model_clv_minor IS NOT NULL),
split AS (
  SELECT *, median(current_value_minor) OVER () AS current_median, median(potential_minor) OVER () AS potential_median
  FROM valued),
levels AS (
  SELECT customer_id, current_value_minor, potential_minor, p_alive,
    CASE WHEN current_value_minor > current_median THEN 'high' ELSE 'low' END AS current_level,
    CASE WHEN potential_minor > potential_median THEN 'high' ELSE 'low' END AS potential_level
  FROM split)
SELECT *, CASE current_level || '/' || potential_level
    WHEN 'high/high' THEN 'most_valuable'
    WHEN 'low/high' THEN 'growth'
    WHEN 'high/low' THEN 'maintain'
    ELSE 'low_value' END AS quadrant
FROM levels
"""

# Where the value model and the rules say opposite things of a customer: the rules call
# them churned (a year without buying, by the policy) while the model gives them at
# least an even chance of still buying, or the rules call them active while the model
# gives them less than an even chance. Under BG/NBD every one-purchase customer has
# P(alive) = 1, so the first kind lists every churned one-purchase customer: what the
# modified BG/NBD (`[value_model] model = "mbg_nbd"`) is for.
_MODEL_VS_RULES = """
CREATE OR REPLACE VIEW model_vs_rules AS
SELECT customer_id, stage, activity, purchases, last_purchase_at, p_alive, value_model_id,
  CASE WHEN activity = 'churned' THEN 'churned_but_likely_alive' ELSE 'active_but_likely_gone' END AS disagreement
FROM customers
WHERE p_alive IS NOT NULL
  AND ((activity = 'churned' AND p_alive >= 0.5) OR (activity = 'active' AND p_alive < 0.5))
"""

DDL = (_RFM, _PYRAMID, _LOYALTY_MATRIX, _FUNNEL, _DAILY, _SATISFACTION, _COHORTS, _VALUE_MATRIX, _MODEL_VS_RULES)
VIEWS = (
    "customer_rfm", "value_pyramid", "loyalty_matrix", "stage_funnel", "daily_lifecycle_counts", "satisfaction",
    "cohort_retention", "value_matrix", "model_vs_rules",
)
assert set(_START) <= set(DIMENSIONS)
