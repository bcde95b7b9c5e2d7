"""What fitting and applying the value models costs as the population grows.

Simulates a population from BG/NBD and Gamma-Gamma with known parameters (in days and
minor units, close to what CDNOW gives), then times `fit_bg_nbd`, `fit_gamma_gamma`
and `figures` of lifecycle/value_model.py on it, and prints how close the fit comes to
the parameters it was simulated from. With `--home`, times a real fit on a derived home
instead, in its two steps: reading the summaries and fitting (as `lifecycle
fit-value-model` does), then appending the fit and processing it (every customer's
figures computed and written).

    .venv/bin/python benchmarks/value_model.py --customers 700000
    .venv/bin/python benchmarks/value_model.py --home benchmarks/out/home-scale-c700000-s7-d365
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lifecycle.policy import Policy  # noqa: E402
from lifecycle.value_model import PurchaseSummaries, figures, fit_bg_nbd, fit_gamma_gamma  # noqa: E402
from schemas.events import BetaGeoParameters, GammaGammaParameters  # noqa: E402

TRUTH = BetaGeoParameters(r=0.25, alpha=30.0, a=0.8, b=2.4)
SPEND = GammaGammaParameters(p=6.25, q=3.74, gamma=1544.0)


def simulate(customers: int, days: int, seed: int) -> PurchaseSummaries:
    """Each customer joins on a uniform day, buys at a gamma-distributed daily rate and
    may drop out after each purchase (beta-distributed chance): summaries at `days`."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, days, customers)
    rate = rng.gamma(TRUTH.r, 1 / TRUTH.alpha, customers)
    drop = rng.beta(TRUTH.a, TRUTH.b, customers)
    frequency, recency = np.zeros(customers, np.int64), np.zeros(customers, np.int64)
    for index in range(customers):
        day, bought, last = float(first[index]), set(), first[index]
        while True:
            day += rng.exponential(1 / rate[index])
            if day >= days:
                break
            bought.add(int(day))
            last = int(day)
            if rng.random() < drop[index]:
                break
        bought.discard(int(first[index]))
        frequency[index], recency[index] = len(bought), last - first[index]
    age = days - first
    nu = rng.gamma(SPEND.q, 1 / SPEND.gamma, customers)
    bought = np.maximum(frequency, 1)
    monetary = np.where(frequency > 0, rng.gamma(SPEND.p * bought, 1 / nu) / bought, 0)
    return PurchaseSummaries(frequency, recency, age, np.round(monetary))


def on_home(home: Path, as_of: str | None) -> list[tuple[str, str]]:
    """Fit on a derived home (as of `as_of`, ISO 8601, or the log's time) and apply the
    fit, timing each step."""
    from datetime import datetime

    from lifecycle.state import epoch_seconds

    from consumers.processing.engine_session import EngineSession
    from consumers.settings import Settings
    from schemas import encode_event

    with EngineSession(Settings(home=home)) as session:
        session.run_once()
        started = time.perf_counter()
        cutoff = session.log_time() if as_of is None else epoch_seconds(datetime.fromisoformat(as_of))
        fit = session.store.fit_value_models(cutoff, source="benchmark")  # type: ignore[arg-type]
        fitted = time.perf_counter() - started
        session.log.append([(fit, encode_event(fit))])
        started = time.perf_counter()
        session.run_once()
        applied = time.perf_counter() - started
    return [("customers (repeat buyers)", f"{fit.customers:,} ({fit.repeat_customers:,})"),
            ("summaries and fit, s", f"{fitted:.1f}"),
            ("processing the fit (figures of every customer, written), s", f"{applied:.1f}"),
            ("BG/NBD", f"r={fit.bg_nbd.r:.3f} alpha={fit.bg_nbd.alpha:.3f} a={fit.bg_nbd.a:.3f} b={fit.bg_nbd.b:.3f}"),
            ("peak RSS, MiB", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=700_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path, help="time a real fit on this derived home instead")
    parser.add_argument("--as-of", help="with --home: the cutoff (default: the log's time)")
    args = parser.parse_args()
    if args.home is not None:
        _print(on_home(args.home, args.as_of))
        return
    started = time.perf_counter()
    summaries = simulate(args.customers, args.days, args.seed)
    print(f"simulated {args.customers:,} customers over {args.days} days in {time.perf_counter() - started:.1f} s "
          f"({np.count_nonzero(summaries.frequency):,} repeat buyers)", file=sys.stderr)
    distinct = len(np.unique(np.column_stack([summaries.frequency, summaries.recency, summaries.age]), axis=0))
    rows = [("customers", f"{args.customers:,}"), ("distinct (x, t_x, T)", f"{distinct:,}")]
    started = time.perf_counter()
    bg_nbd, _ = fit_bg_nbd(summaries)
    rows.append(("BG/NBD fit, s", f"{time.perf_counter() - started:.1f}"))
    started = time.perf_counter()
    gamma_gamma, _ = fit_gamma_gamma(summaries)
    rows.append(("Gamma-Gamma fit, s", f"{time.perf_counter() - started:.1f}"))
    started = time.perf_counter()
    figures(bg_nbd, gamma_gamma, summaries, Policy(version="benchmark"))
    seconds = time.perf_counter() - started
    rows.append(("figures, s (µs a customer)", f"{seconds:.1f} ({1e6 * seconds / args.customers:.1f})"))
    rows.append(("fitted BG/NBD (truth)", " ".join(f"{n}={getattr(bg_nbd, n):.3f} ({getattr(TRUTH, n)})"
                                                    for n in ("r", "alpha", "a", "b"))))
    rows.append(("fitted Gamma-Gamma (truth)", " ".join(f"{n}={getattr(gamma_gamma, n):.3f} ({getattr(SPEND, n)})"
                                                         for n in ("p", "q", "gamma"))))
    rows.append(("peak RSS, MiB", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"))
    _print(rows)


def _print(rows: list[tuple[str, str]]) -> None:
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
