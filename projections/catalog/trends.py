"""The catalog's views over time: `monthly_trends` (revenue, buyers, active customers,
churn and win-back, each month) and `stage_stays` / `time_in_stage` (how long customers
stay in each stage).

Read from the other views and tables (`daily_lifecycle_counts`, `value_movements`,
`lifecycle_transitions`), so they cost the engine nothing; defined in docs/catalog.md
and tested on hand-written populations (tests/test_trends.py).
"""

from __future__ import annotations

_MONTHLY = """
CREATE OR REPLACE VIEW monthly_trends AS
WITH month_end AS (
  SELECT CAST(date_trunc('month', day) AS DATE) AS month, max(day) AS last_day
  FROM daily_lifecycle_counts GROUP BY 1),
ends AS (
  SELECT e.month,
    sum(d.customers) FILTER (WHERE d.value = 'active') AS active,
    sum(d.customers) FILTER (WHERE d.value <> 'churned') AS not_churned,
    sum(d.customers) FILTER (WHERE d.value IN ('dormant', 'churned')) AS asleep
  FROM month_end e JOIN daily_lifecycle_counts d ON d.day = e.last_day AND d.dimension = 'activity'
  GROUP BY 1),
money AS (
  SELECT CAST(date_trunc('month', timezone('UTC', occurred_at)) AS DATE) AS month,
    sum(revenue_minor) AS revenue_minor, count(DISTINCT customer_id) FILTER (WHERE kind = 'purchase') AS buyers
  FROM value_movements GROUP BY 1),
moves AS (
  SELECT CAST(date_trunc('month', timezone('UTC', occurred_at)) AS DATE) AS month,
    count(*) FILTER (WHERE to_value = 'churned') AS churned,
    count(*) FILTER (WHERE rule = 'activity.win_back') AS won_back
  FROM lifecycle_transitions WHERE dimension = 'activity' GROUP BY 1)
SELECT e.month,
  CAST(coalesce(m.revenue_minor, 0) AS BIGINT) AS revenue_minor,
  coalesce(m.buyers, 0) AS buyers,
  CAST(e.active AS BIGINT) AS active_customers,
  coalesce(v.churned, 0) AS churned,
  coalesce(v.won_back, 0) AS won_back,
  coalesce(v.churned, 0) / nullif(lag(e.not_churned) OVER (ORDER BY e.month), 0) AS churn_rate,
  coalesce(v.won_back, 0) / nullif(lag(e.asleep) OVER (ORDER BY e.month), 0) AS win_back_rate
FROM ends e LEFT JOIN money m USING (month) LEFT JOIN moves v USING (month)
"""

# Each stay in a stage: entered by a stage change (or, for the first stage, at the
# customer's first event), left by the next one; `left_at` NULL while still there.
_STAYS = """
CREATE OR REPLACE VIEW stage_stays AS
WITH t AS (
  SELECT customer_id, from_value, to_value, occurred_at,
    lead(occurred_at) OVER (PARTITION BY customer_id ORDER BY sequence) AS next_at,
    row_number() OVER (PARTITION BY customer_id ORDER BY sequence) AS n
  FROM lifecycle_transitions WHERE dimension = 'stage'),
stays AS (
  SELECT customer_id, to_value AS stage, occurred_at AS entered_at, next_at AS left_at FROM t
  UNION ALL
  SELECT t.customer_id, t.from_value, c.first_event_at, t.occurred_at
  FROM t JOIN customer_rows c USING (customer_id) WHERE t.n = 1)
SELECT *, epoch(left_at - entered_at) / 86400.0 AS days FROM stays
"""

_TIME_IN_STAGE = """
CREATE OR REPLACE VIEW time_in_stage AS
SELECT stage,
  count(left_at) AS stays_ended,
  count(*) FILTER (WHERE left_at IS NULL) AS still_there,
  quantile_cont(days, 0.5) AS median_days,
  quantile_cont(days, 0.9) AS p90_days
FROM stage_stays GROUP BY stage
"""

DDL = (_MONTHLY, _STAYS, _TIME_IN_STAGE)
VIEWS = ("monthly_trends", "stage_stays", "time_in_stage")
