"""What fitting and applying the value models costs as the population grows.

Simulates a population from BG/NBD and Gamma-Gamma with known parameters (in days and
minor units, close to what CDNOW gives), then times `fit_bg_nbd`, `fit_gamma_gamma`
and `figures` of lifecycle/value_model.py on it, and prints how close the fit comes to
the parameters it was simulated from. The summaries' SQL and the writes of a real home
are timed by `lifecycle fit-value-model` itself (docs/benchmarks.md says how).

    .venv/bin/python benchmarks/value_model.py --customers 700000
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
    monetary = np.where(frequency > 0, rng.gamma(SPEND.p * np.maximum(frequency, 1), 1 / nu) / np.maximum(frequency, 1), 0)
    return PurchaseSummaries(frequency, recency, age, np.round(monetary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=700_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
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
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
