"""The value models (lifecycle/value_model.py) against their authors' published fits
and against lifetimes, and a fit on the log replaying to the same figures.

The data is the CDNOW sample the models' papers use (tests/fixtures/cdnow/): 2,357
customers who first bought CDs in the first quarter of 1997, their 6,919 purchases to
mid-1998 (`CDNOW_sample.txt`: master id, customer 1-2357, date, CDs, dollars), and the
authors' summary of the 39-week calibration period to 1997-09-30, in weeks
(`..._with_transactions.csv`: x, t_x, T, zbar). Published fits of that summary:
BG/NBD r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 (Fader, Hardie and Lee 2005,
log-likelihood -9582.4); Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44 over the 946
repeat buyers (Fader and Hardie 2013).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.processing.engine_session import EngineSession
from lifecycle.policy import parse_policy
from lifecycle.value_model import (
    PurchaseSummaries,
    expected_purchases,
    expected_spend,
    fit_bg_nbd,
    fit_gamma_gamma,
    p_alive,
)
from projections.catalog import value_estimates
from schemas import decode_event
from schemas.events import BetaGeoParameters, FittedPartition, ValueModelFitted
from tests.cli import ROOT, lifecycle, lifecycle_command

CDNOW = Path(__file__).parent / "fixtures" / "cdnow"
PUBLISHED_BG_NBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
CUTOFF = "1997-09-30T23:59:59Z"


def _published_summary() -> tuple[np.ndarray, ...]:
    with (CDNOW / "cdnow_customers_summary_with_transactions.csv").open() as file:
        rows = list(csv.DictReader(file))
    return tuple(np.array([float(row[name]) for row in rows]) for name in ("x", "t_x", "T", "zbar"))


def _close(fitted: object, published: dict[str, float], scale: dict[str, float] | None = None) -> None:
    scale = scale or {}
    for name, value in published.items():
        got = getattr(fitted, name) / scale.get(name, 1)
        assert got == pytest.approx(value, rel=0.01), f"{name}: {got} is not within 1% of the published {value}"


@pytest.fixture(scope="module")
def summary() -> PurchaseSummaries:
    return PurchaseSummaries(*_published_summary())


def test_bg_nbd_fit_matches_the_published_cdnow_fit(summary):
    params, log_likelihood = fit_bg_nbd(summary)
    _close(params, PUBLISHED_BG_NBD)
    assert log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_gamma_gamma_fit_matches_the_published_cdnow_fit(summary):
    params, _ = fit_gamma_gamma(summary)
    _close(params, PUBLISHED_GAMMA_GAMMA)


def test_fits_and_figures_match_lifetimes(summary):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, t_x, age, m = summary.frequency, summary.recency, summary.age, summary.monetary
    ours, _ = fit_bg_nbd(summary)
    theirs = BetaGeoFitter().fit(x, t_x, age)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(ours, name) == pytest.approx(theirs.params_[name], rel=1e-3), name
    assert p_alive(ours, x, t_x, age) == pytest.approx(theirs.conditional_probability_alive(x, t_x, age), rel=2e-3)
    assert expected_purchases(ours, 39, x, t_x, age) == pytest.approx(
        theirs.conditional_expected_number_of_purchases_up_to_time(39, x, t_x, age), rel=2e-3)
    # With the same parameters, the same formulas: equal to rounding.
    theirs.params_[["r", "alpha", "a", "b"]] = [ours.r, ours.alpha, ours.a, ours.b]
    assert p_alive(ours, x, t_x, age) == pytest.approx(theirs.conditional_probability_alive(x, t_x, age), rel=1e-9)
    assert expected_purchases(ours, 52, x, t_x, age) == pytest.approx(
        theirs.conditional_expected_number_of_purchases_up_to_time(52, x, t_x, age), rel=1e-9)

    repeat = (x > 0) & (m > 0)
    spend, _ = fit_gamma_gamma(summary)
    gamma_gamma = GammaGammaFitter().fit(x[repeat], m[repeat])
    for ours_name, their_name in (("p", "p"), ("q", "q"), ("gamma", "v")):
        assert getattr(spend, ours_name) == pytest.approx(gamma_gamma.params_[their_name], rel=1e-3), ours_name
    gamma_gamma.params_[["p", "q", "v"]] = [spend.p, spend.q, spend.gamma]
    assert expected_spend(spend, x, m) == pytest.approx(
        gamma_gamma.conditional_expected_average_profit(x, m), rel=1e-9)


def test_the_modified_bg_nbd_matches_lifetimes_and_lets_one_purchase_customers_drop_out(summary):
    """MBG/NBD (Batislam, Denizel and Filiztekin 2007) against lifetimes'
    ModifiedBetaGeoFitter on the CDNOW summary: the fit within 1%, the figures too."""
    from lifetimes import ModifiedBetaGeoFitter

    x, t_x, age = summary.frequency, summary.recency, summary.age
    ours, log_likelihood = fit_bg_nbd(summary, modified=True)
    theirs = ModifiedBetaGeoFitter().fit(x, t_x, age)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(ours, name) == pytest.approx(theirs.params_[name], rel=0.01), name
    alive = p_alive(ours, x, t_x, age, modified=True)
    assert alive == pytest.approx(theirs.conditional_probability_alive(x, t_x, age), rel=0.01)
    assert expected_purchases(ours, 39, x, t_x, age, modified=True) == pytest.approx(
        theirs.conditional_expected_number_of_purchases_up_to_time(39, x, t_x, age), rel=0.01)
    theirs.params_[["r", "alpha", "a", "b"]] = [ours.r, ours.alpha, ours.a, ours.b]
    assert alive == pytest.approx(theirs.conditional_probability_alive(x, t_x, age), rel=1e-9)
    assert expected_purchases(ours, 52, x, t_x, age, modified=True) == pytest.approx(
        theirs.conditional_expected_number_of_purchases_up_to_time(52, x, t_x, age), rel=1e-9)
    # BG/NBD's blind spot: a one-purchase customer is certainly alive there, not here.
    bg_nbd, bg_likelihood = fit_bg_nbd(summary)
    once = x == 0
    assert np.all(p_alive(bg_nbd, x, t_x, age)[once] == 1)
    assert alive[once].max() < 1 and alive[once].min() < 0.5
    assert log_likelihood > bg_likelihood, "on CDNOW the modified model fits a little better"


@given(st.integers(1, 50), st.floats(0, 300), st.floats(0, 300), st.floats(1, 400))
def test_p_alive_falls_with_silence_and_expected_purchases_grow_with_time(x, last, extra, horizon):
    params = BetaGeoParameters(r=0.243, alpha=30.9, a=0.793, b=2.426)
    frequency, recency = np.array([float(x)]), np.array([last])
    ages = np.array([last, last + extra])
    alive = p_alive(params, np.repeat(frequency, 2), np.repeat(recency, 2), ages)
    assert 0 <= alive[1] <= alive[0] <= 1
    assert p_alive(params, np.array([0.0]), np.array([0.0]), np.array([last]))[0] == 1
    sooner, later = (expected_purchases(params, t, frequency, recency, ages[:1])[0] for t in (horizon, horizon * 2))
    assert 0 <= sooner <= later


def _cdnow_events() -> list[dict]:
    """The raw sample as purchase events: one order per line, at noon UTC of its day."""
    events = []
    for number, line in enumerate((CDNOW / "CDNOW_sample.txt").read_text().splitlines(), start=1):
        _, customer, day, _, dollars = line.split()
        events.append({
            "type": "purchase", "event_id": f"00000000-0000-4000-8000-{number:012d}",
            "occurred_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00Z", "source": "cdnow",
            "customer_id": f"cdnow-{int(customer):04d}", "order_id": f"order-{number}",
            "amount_minor": int(Decimal(dollars) * 100), "currency": "USD",
        })
    return sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]))


def _fit_on_the_log(settings, capsys) -> ValueModelFitted:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-events") == 0
    fits = [decode_event(line) for line in capsys.readouterr().out.splitlines() if "value_model_fitted" in line]
    assert isinstance(fits[-1], ValueModelFitted)
    return fits[-1]


def _rows(settings, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    connection = duckdb.connect(str(settings.views_path), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _usd_policy(tmp_path: Path, refit_every_days: int, model: str = "bg_nbd") -> Path:
    policy = tmp_path / "usd.toml"
    policy.write_text(f'version = "cdnow-usd-{refit_every_days}-{model}"\n[value]\nbase_currency = "USD"\n'
                      f"[value.rates_to_base]\nUSD = 1.0\n[value_model]\nrefit_every_days = {refit_every_days}\n"
                      f'model = "{model}"\n')
    return policy


ESTIMATES = "SELECT * FROM value_estimates ORDER BY customer_id"
MODELS = "SELECT * FROM value_models ORDER BY model_id"


def test_cdnow_on_the_log_fits_the_published_parameters_and_replays_to_the_same_figures(
    settings, tmp_path, capsys, monkeypatch
):
    policy = _usd_policy(tmp_path, refit_every_days=0)
    source = tmp_path / "cdnow.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _cdnow_events()))
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy)) == 0
    assert lifecycle(settings, "fit-value-model", "--as-of", CUTOFF, "--policy", str(policy)) == 0

    (fit,) = _rows(settings, "SELECT r, alpha, a, b, p, q, gamma, customers, repeat_customers FROM value_models")
    r, alpha, a, b, p, q, gamma, customers, repeat = fit
    # Days on the log, weeks in the paper; cents on the log, dollars in the paper.
    _close(BetaGeoParameters(r, alpha, a, b), PUBLISHED_BG_NBD, {"alpha": 7})
    _close(type("Spend", (), {"p": p, "q": q, "gamma": gamma}), PUBLISHED_GAMMA_GAMMA, {"gamma": 100})
    assert (customers, repeat) == (2357, 946)

    # The summaries the engine made of the raw purchases are the authors'.
    x, t_x, age, zbar = _published_summary()
    made = _rows(settings, "SELECT frequency, recency_days, age_days, monetary_minor FROM value_estimates "
                           "ORDER BY customer_id")
    assert [row[0] for row in made] == x.tolist()
    assert [round(row[1] / 7, 2) for row in made] == t_x.tolist()
    assert [round(row[2] / 7, 2) for row in made] == age.tolist()
    cents = Decimal("0.01")
    assert [float((Decimal(row[3]) / 100).quantize(cents, ROUND_HALF_UP)) for row in made] == zbar.tolist()

    # Explained to an auditor: the summary, the fit and the figures.
    capsys.readouterr()
    assert lifecycle(settings, "explain", "cdnow-0001", "--format", "json") == 0
    model = json.loads(capsys.readouterr().out)["value_model"]
    summary = (model["frequency"], model["recency_days"], model["age_days"], model["monetary_minor"])
    assert summary == (2, 213, 272, 2234.5)
    assert model["p_alive"] == _rows(settings, "SELECT p_alive FROM customers WHERE customer_id = 'cdnow-0001'")[0][0]
    assert lifecycle(settings, "explain", "cdnow-0001") == 0
    assert "from 2 repeat purchase days, the last 213 days after the first" in capsys.readouterr().out

    # The summaries read in chunks of any size give the fit's fingerprints and all the rows.
    fit = _fit_on_the_log(settings, capsys)
    connection = duckdb.connect(str(settings.views_path), read_only=True)
    try:
        for rows in (value_estimates.CHUNK_ROWS, 500):
            monkeypatch.setattr(value_estimates, "CHUNK_ROWS", rows)
            for partition, read in fit.data.items():
                written: list = []
                fingerprint, without = value_estimates.estimates(
                    connection, fit, partition, parse_policy(policy.read_text()), "value_movements", written.append)
                assert (fingerprint, without) == (read.fingerprint, 0)
                assert sum(table.num_rows for table in written) == read.customers
    finally:
        connection.close()

    live = _rows(settings, ESTIMATES), _rows(settings, MODELS)
    assert len(live[0]) == 2357 and all(0 <= row[7] <= 1 for row in live[0])
    assert _rows(settings, "SELECT count(*) FROM customers WHERE p_alive IS NOT NULL") == [(2357,)]
    assert lifecycle(settings, "replay", "--policy", str(policy), "--workers", "2") == 0
    assert (_rows(settings, ESTIMATES), _rows(settings, MODELS)) == live
    assert lifecycle(settings, "verify", "--policy", str(policy), "--workers", "1") == 0

    connection = duckdb.connect(str(settings.views_path))
    connection.execute("UPDATE value_estimates SET p_alive = 0.5 WHERE customer_id = 'cdnow-0001'")
    connection.close()
    capsys.readouterr()
    assert lifecycle(settings, "verify", "--policy", str(policy), "--workers", "1") == 1
    assert "customer cdnow-0001: value_estimates: differs in p_alive" in capsys.readouterr().out


def test_live_processing_fits_on_the_policys_schedule(settings, tmp_path, capsys):
    policy = _usd_policy(tmp_path, refit_every_days=30)
    source = tmp_path / "cdnow.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _cdnow_events()))
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    process = subprocess.Popen(
        lifecycle_command(settings, "process", "--policy", str(policy), "--poll-interval", "0.1",
                          "--clock-every", "0", "--snapshot-every", "0.1"),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        # Bounded wait: the test asserts what happened, not how fast.
        for _ in range(600):
            if _fits_seen_live(settings, capsys):
                break
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
    stderr = process.stderr.read() if process.stderr else ""
    assert status == 0, stderr
    assert "fitted the value models as of 1998-06-30T12:00:00+00:00 to 2,357 customers" in stderr
    assert _rows(settings, "SELECT count(*) FROM value_models") == [(1,)]
    assert _rows(settings, "SELECT count(*) FROM customers WHERE p_alive IS NOT NULL") == [(2357,)]
    # Every record read is told of, the fit's included: the totals add up to the log.
    told = sum(int(line.split()[1]) for line in stderr.splitlines() if line.startswith("processed "))
    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-events") == 0
    assert told == len(capsys.readouterr().out.splitlines())


def _fits_seen_live(settings, capsys) -> int:  # type: ignore[no-untyped-def]
    """Fits in the running engine's snapshot, as `lifecycle sql` reads it (0 before the first snapshot)."""
    capsys.readouterr()
    if lifecycle(settings, "sql", "SELECT count(*) AS n FROM value_models", "--format", "json") != 0:
        return 0
    return json.loads(capsys.readouterr().out)[0]["n"]


def _fit_told(settings, capsys, *args: str) -> str:  # type: ignore[no-untyped-def]
    """What `lifecycle fit-value-model ARGS` said of the fit, after it succeeded."""
    capsys.readouterr()
    assert lifecycle(settings, "fit-value-model", *args) == 0
    return capsys.readouterr().err


def test_fitting_the_same_data_again_appends_nothing_and_new_purchases_make_a_new_fit(settings, tmp_path, capsys):
    policy = _usd_policy(tmp_path, refit_every_days=30)
    events = _cdnow_events()[:1500]
    late = events[:-1:50]  # bought before the first fit's cutoff, published after it
    source = tmp_path / "cdnow.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events if e not in late))
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    assert "is on the log and applied" in _fit_told(settings, capsys, "--policy", str(policy))
    first = _fit_on_the_log(settings, capsys)
    told = _fit_told(settings, capsys, "--policy", str(policy))
    assert f"fit {first.event_id} was already on the log" in told and "nothing appended" in told
    with EngineSession(replace(settings, policy=policy)) as session:
        fit, appended, _ = session.fit_value_models()
        assert (fit.event_id, appended) == (first.event_id, False)
        assert not session.value_fit_due()  # the live schedule does not fit the same data again

    capsys.readouterr()
    assert lifecycle(settings, "tail", "customer-events") == 0
    fits = [line for line in capsys.readouterr().out.splitlines() if "value_model_fitted" in line]
    assert len(fits) == len(first.data)  # one fit, in every partition
    assert _rows(settings, "SELECT model_id FROM value_models") == [(first.event_id,)]
    assert _rows(settings, "SELECT count(*) FROM value_model_partitions") == [(len(fits),)]

    source.write_text("".join(json.dumps(e) + "\n" for e in late))
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    cutoff = first.occurred_at.isoformat()
    assert "is on the log and applied" in _fit_told(settings, capsys, "--as-of", cutoff, "--policy", str(policy))
    second = _fit_on_the_log(settings, capsys)
    assert second.event_id != first.event_id and second.occurred_at == first.occurred_at
    assert _rows(settings, "SELECT count(DISTINCT model_id), count(DISTINCT fingerprint) FROM value_models") == [(2, 2)]


def test_a_fits_data_fingerprint_names_each_partitions_data_not_the_positions_read():
    bought, empty = (FittedPartition(6, 2, "a" * 64), FittedPartition(6, 0, "b" * 64))
    read = {"p0": bought, "p1": empty}
    assert value_estimates.data_fingerprint(read) == value_estimates.data_fingerprint(
        {"p0": FittedPartition(9, 2, "a" * 64), "p1": FittedPartition(7, 0, "b" * 64)})
    assert value_estimates.data_fingerprint(read) != value_estimates.data_fingerprint({"p0": empty, "p1": bought})


def test_a_fit_the_data_cannot_support_is_refused_with_what_to_do(settings, tmp_path, capsys):
    source = tmp_path / "few.jsonl"
    events = [e for e in _cdnow_events() if e["customer_id"] <= "cdnow-0003"]
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert lifecycle(settings, "publish", str(source)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    capsys.readouterr()
    assert lifecycle(settings, "fit-value-model") == 2
    error = capsys.readouterr().err
    assert "needs at least 10 customers" in error and "publish more purchases" in error
    assert _rows(settings, "SELECT count(*) FROM value_models") == [(0,)]


def test_a_cutoff_later_than_the_log_is_refused(settings, tmp_path, capsys):
    source = tmp_path / "cdnow.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _cdnow_events()[:50]))
    assert lifecycle(settings, "publish", str(source)) == 0
    assert lifecycle(settings, "fit-value-model", "--as-of", "2030-01-01T00:00:00Z") == 2
    assert "later than the log's time" in capsys.readouterr().err


def test_the_policy_parses_its_value_model_section():
    policy = parse_policy('version = "v"\n[value_model]\nrefit_every_days = 30\nhorizon_days = 730\n')
    assert (policy.value_model.refit_every_days, policy.value_model.horizon_days) == (30, 730)


def test_a_fit_whose_figures_overflow_leaves_those_customers_without_figures(settings, tmp_path, capsys):
    """A fit event is data on the log: with a = 1 the expected purchases divide by zero."""
    policy = _usd_policy(tmp_path, refit_every_days=0)
    source = tmp_path / "cdnow.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _cdnow_events()[:1500]))
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    assert lifecycle(settings, "fit-value-model", "--policy", str(policy)) == 0
    fitted = msgspec.to_builtins(_fit_on_the_log(settings, capsys))
    forged = {**fitted, "event_id": "00000000-0000-4000-8000-0000000f0f0f", "bg_nbd": {**fitted["bg_nbd"], "a": 1.0}}
    source.write_text(json.dumps(forged) + "\n")
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock", "--policy", str(policy)) == 0
    customers, without = _rows(settings, "SELECT sum(customers), sum(customers_without_figures) FROM value_model_"
                                         "partitions WHERE model_id = '00000000-0000-4000-8000-0000000f0f0f'")[0]
    assert 0 < without <= customers
    assert _rows(settings, "SELECT count(*) FROM value_estimates WHERE p_alive IS NULL") == [(without,)]
    assert _rows(settings, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert lifecycle(settings, "verify", "--policy", str(policy), "--workers", "1") == 0


def test_the_policy_picks_the_modified_model_and_the_catalog_flags_where_model_and_rules_disagree(
        settings, tmp_path, capsys):
    policy = _usd_policy(tmp_path, refit_every_days=0, model="mbg_nbd")
    source = tmp_path / "cdnow.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _cdnow_events()))
    assert lifecycle(settings, "publish", str(source), "--policy", str(policy)) == 0
    assert lifecycle(settings, "process", "--once", "--policy", str(policy), "--clock-at", "1998-06-30T00:00:00Z",
                     "--allow-future") == 0
    assert lifecycle(settings, "fit-value-model", "--as-of", CUTOFF, "--policy", str(policy)) == 0
    (fit,) = _rows(settings, "SELECT model, r, alpha, a, b FROM value_models")
    # Days on the log, weeks in lifetimes' fit of the summary (r 0.525, alpha 6.183 weeks, a 0.891, b 1.614).
    assert fit[0] == "mbg_nbd"
    assert fit[1:] == pytest.approx((0.525, 6.183 * 7, 0.891, 1.614), rel=0.01)
    (once,) = _rows(settings, "SELECT count(*), max(p_alive) FROM value_estimates WHERE frequency = 0")
    assert once[0] == 2357 - 946
    assert once[1] < 1, "a one-purchase customer may have dropped out"
    flagged = _rows(settings, "SELECT disagreement, count(*) FROM model_vs_rules GROUP BY 1 ORDER BY 1")
    churned = _rows(settings, "SELECT count(*) FROM customers WHERE activity = 'churned' AND p_alive >= 0.5")[0][0]
    active = _rows(settings, "SELECT count(*) FROM customers WHERE activity = 'active' AND p_alive < 0.5")[0][0]
    assert dict(flagged) == {k: v for k, v in (("active_but_likely_gone", active),
                                               ("churned_but_likely_alive", churned)) if v}
    assert churned + active > 0
