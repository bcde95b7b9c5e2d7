"""The customer value models: BG/NBD (or MBG/NBD) and Gamma-Gamma, fitted and applied.

BG/NBD (Fader, Hardie and Lee, "Counting your customers the easy way", 2005) says how
often a customer buys and whether they are still "alive". It lets a customer drop out
only after a repeat purchase, so every one-purchase customer is certainly alive
(P(alive) = 1) however long ago they bought. The modified BG/NBD, MBG/NBD (Batislam,
Denizel and Filiztekin 2007), lets them drop out at their first purchase too: the
same formulas with b + 1 where BG/NBD has b for the dropout after each purchase, and
the dropout term for every customer (`modified`). The policy picks one
(`[value_model] model`). Gamma-Gamma (Fader and
Hardie, "The Gamma-Gamma model of monetary value", 2013) how much they spend a
purchase. Both read a customer's purchase summary as of a cutoff, in the literature's
terms (`PurchaseSummaries`), and are fitted by maximum likelihood over all customers.

Every function takes whole columns (numpy arrays) and computes element by element, so
one customer or twenty million go through the same code; the figures of a customer
depend only on the parameters and their own summary, never on the order of the rows.
Figures are rounded (probabilities and counts to 6 decimals, money to whole minor
units) so that the last bits of a special function on another CPU do not show.

scipy is imported where it is used: it takes ~0.5 s to import, and every `lifecycle`
command imports this module, while only fits and applying them need scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifecycle.errors import LifecycleDomainError
from lifecycle.policy import Policy
from schemas.events import BetaGeoParameters, GammaGammaParameters

STEP_DAYS = 30
"""CLV sums the expected spend of 30-day steps, each discounted at its end (as lifetimes does)."""
_DECIMALS = 6


class ModelNotFitted(LifecycleDomainError):
    """The data cannot support a fit (too few customers, or no repeat purchases)."""


@dataclass(frozen=True)
class PurchaseSummaries:
    """Per customer, as of a cutoff, in days: `frequency` counts the days with a
    purchase after the first purchase's day; `recency` is the days from the first
    purchase's day to the last's; `age` (the literature's T) from the first purchase's
    day to the cutoff's; `monetary` is the mean spend of the repeat purchase days (a
    day's purchases count as one, of their sum), 0 without any."""

    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    monetary: np.ndarray
    weights: np.ndarray | None = None
    """How many customers each row stands for (for fitting on distinct rows); None: one."""

    def __len__(self) -> int:
        return len(self.frequency)

    def customers(self, where: np.ndarray | None = None) -> int:
        """How many customers the rows (those `where` is true) stand for."""
        weights = np.ones(len(self)) if self.weights is None else self.weights
        return int(round(float(weights.sum() if where is None else weights[where].sum())))


@dataclass(frozen=True)
class ValueFigures:
    """Each customer's figures, in the order of the summaries."""

    p_alive: np.ndarray
    expected_purchases: np.ndarray
    expected_spend_minor: np.ndarray
    clv_minor: np.ndarray
    valid: np.ndarray
    """Where false, the figures overflowed: the customer has none (see `figures`)."""


def bg_nbd_log_likelihood(params: BetaGeoParameters, x: np.ndarray, t_x: np.ndarray, age: np.ndarray,
                          modified: bool = False) -> np.ndarray:
    """Each customer's log-likelihood under BG/NBD (FHL 2005, equation 6), or under
    MBG/NBD (`modified`: Batislam et al. 2007, equation 4)."""
    from scipy.special import gammaln

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    shift = 1 if modified else 0
    common = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
              + gammaln(a + b) + gammaln(b + x + shift) - gammaln(b) - gammaln(a + b + x + shift))
    stayed = -(r + x) * np.log(alpha + age)
    # Under BG/NBD only repeat buyers may have dropped out after their last purchase.
    can_drop = np.full(x.shape, True) if modified else x > 0
    dropped = np.full(x.shape, -np.inf)
    dropped[can_drop] = (np.log(a) - np.log(b + x[can_drop] + shift - 1)
                         - (r + x[can_drop]) * np.log(alpha + t_x[can_drop]))
    return common + np.logaddexp(stayed, dropped)


def gamma_gamma_log_likelihood(params: GammaGammaParameters, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Each repeat buyer's log-likelihood of their mean spend `m` over `x` purchases
    (Fader and Hardie 2013, equation 5, without the terms free of the parameters)."""
    from scipy.special import gammaln

    p, q, gamma = params.p, params.q, params.gamma
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + gamma))


def fit_bg_nbd(summaries: PurchaseSummaries, modified: bool = False) -> tuple[BetaGeoParameters, float]:
    """The maximum-likelihood BG/NBD (`modified`: MBG/NBD) parameters, and the log-likelihood there."""
    if summaries.customers() < _MIN_CUSTOMERS or not np.any(summaries.frequency > 0):
        raise ModelNotFitted(
            f"{'MBG/NBD' if modified else 'BG/NBD'} needs at least {_MIN_CUSTOMERS} customers with a purchase, "
            "some of them repeat buyers "
            f"(there are {summaries.customers()}): publish more purchases or pick a later cutoff"
        )
    rows, weights = _distinct(summaries.weights, summaries.frequency, summaries.recency, summaries.age)
    x, t_x, age = rows

    def negative(log_params: np.ndarray) -> float:
        params = BetaGeoParameters(*np.exp(log_params).tolist())
        return -float(weights @ bg_nbd_log_likelihood(params, x, t_x, age, modified))

    start = np.log([1.0, max(float(np.average(age, weights=weights)), 1.0) / 10, 1.0, 1.0])
    best = _maximise(negative, start, weights.sum())
    return BetaGeoParameters(*np.exp(best.x).tolist()), -float(best.fun)


def fit_gamma_gamma(summaries: PurchaseSummaries) -> tuple[GammaGammaParameters, float]:
    """The maximum-likelihood Gamma-Gamma parameters over the repeat buyers with a
    positive mean spend, and the log-likelihood there."""
    repeat = (summaries.frequency > 0) & (summaries.monetary > 0)
    if summaries.customers(repeat) < _MIN_CUSTOMERS:
        raise ModelNotFitted(
            f"Gamma-Gamma needs at least {_MIN_CUSTOMERS} repeat buyers with a positive spend "
            f"(there are {summaries.customers(repeat)}): publish more purchases or pick a later cutoff"
        )
    weighted = None if summaries.weights is None else summaries.weights[repeat]
    (x, m), weights = _distinct(weighted, summaries.frequency[repeat], summaries.monetary[repeat])

    def negative(log_params: np.ndarray) -> float:
        p, q, gamma = np.exp(log_params).tolist()
        return -float(weights @ gamma_gamma_log_likelihood(GammaGammaParameters(p, q, gamma), x, m))

    # Start with q > 1 (a finite mean spend) and gamma on the scale of the spends.
    start = np.log([1.0, 2.0, float(np.median(m))])
    best = _maximise(negative, start, weights.sum())
    p, q, gamma = np.exp(best.x).tolist()
    if not q > 1:
        raise ModelNotFitted(f"the Gamma-Gamma fit has q = {q:.3g} <= 1: the mean spend is unbounded; "
                             "the spends do not suit the model")
    return GammaGammaParameters(p, q, gamma), -float(best.fun)


def _distinct(weights: np.ndarray | None, *columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The distinct rows of the columns (sorted), and how many customers each stands
    for: the likelihood is a weighted sum over them, far fewer than customers."""
    stacked = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    rows, inverse = np.unique(stacked, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=weights, minlength=len(rows))
    return tuple(rows.T), counts.astype(np.float64)


def _maximise(negative, start: np.ndarray, total: float):  # type: ignore[no-untyped-def]
    """L-BFGS-B over the logs of the parameters (so they stay positive), on the mean
    log-likelihood, with finite-difference gradients: deterministic, and ~120
    evaluations of the likelihood where Nelder-Mead took ~900 to the same optimum
    (within 1e-5, docs/benchmarks.md). Where its line search stalls on the gradients'
    noise right at the optimum, Nelder-Mead, which needs no gradient, finishes from there."""
    from scipy.optimize import minimize

    mean = lambda v: negative(v) / total  # noqa: E731
    result = minimize(mean, start, method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 10_000})
    if not result.success:
        result = minimize(mean, result.x, method="Nelder-Mead",
                          options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 40_000})
    if not result.success or not np.isfinite(result.fun):
        raise ModelNotFitted(f"the likelihood could not be maximised: {result.message}")
    result.fun = result.fun * total
    return result


def p_alive(params: BetaGeoParameters, x: np.ndarray, t_x: np.ndarray, age: np.ndarray,
            modified: bool = False) -> np.ndarray:
    """The chance each customer is still alive at their `age` (FHL 2005, equation 13;
    `modified`: MBG/NBD, Batislam et al. 2007, equation 8)."""
    from scipy.special import expit

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    shift = 1 if modified else 0
    odds = np.full(x.shape, -np.inf)
    can_drop = np.full(x.shape, True) if modified else x > 0
    odds[can_drop] = (np.log(a) - np.log(b + x[can_drop] + shift - 1)
                      + (r + x[can_drop]) * (np.log(alpha + age[can_drop]) - np.log(alpha + t_x[can_drop])))
    return expit(-odds)


def expected_purchases(
    params: BetaGeoParameters, t: float, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, modified: bool = False
) -> np.ndarray:
    """Each customer's expected purchases in the next `t` days (FHL 2005, equation 10;
    `modified`: MBG/NBD, Batislam et al. 2007, equation 9)."""
    return _purchases_if_alive(params, t, x, age, modified) * p_alive(params, x, t_x, age, modified)


def _purchases_if_alive(params: BetaGeoParameters, t: float, x: np.ndarray, age: np.ndarray,
                        modified: bool = False) -> np.ndarray:
    """Equation 10 without its last factor, P(alive), which `figures` computes once for all its steps."""
    from scipy.special import hyp2f1

    if t <= 0:
        return np.zeros(x.shape)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    b = b + 1 if modified else b
    big_a, big_b, big_c = r + x, b + x, a + b + x - 1
    z = t / (alpha + age + t)
    with np.errstate(divide="ignore", over="ignore"):
        log_hyp = np.log(hyp2f1(big_a, big_b, big_c, z))
        overflowed = ~np.isfinite(log_hyp)
        if overflowed.any():
            # There, Euler's transformation of the same function (hyp2f1 is most of the cost: only where needed).
            c, a_, b_, z_ = big_c[overflowed], big_a[overflowed], big_b[overflowed], z[overflowed]
            log_hyp[overflowed] = np.log(hyp2f1(c - a_, c - b_, c, z_)) + (c - a_ - b_) * np.log1p(-z_)
    return (a + b + x - 1) / (a - 1) * -np.expm1(log_hyp + (r + x) * np.log((alpha + age) / (alpha + age + t)))


def expected_spend(params: GammaGammaParameters, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Each customer's expected spend a purchase (Fader and Hardie 2013, equation 8):
    the population's mean, moved towards their own mean the more they bought."""
    p, q, gamma = params.p, params.q, params.gamma
    own = np.where(x > 0, m, 0.0)
    return p * (gamma + x * own) / (p * x + q - 1)


def figures(
    bg_nbd: BetaGeoParameters, gamma_gamma: GammaGammaParameters, summaries: PurchaseSummaries, policy: Policy,
    modified: bool = False,
) -> ValueFigures:
    """Each customer's figures over the policy's horizon, CLV discounted at its rate.

    Parameters far from any real fit (a fit event is data on the log like any other)
    can overflow for some customers: those get no figures (`ValueFigures.valid` false),
    rather than infinities, and are counted where the fit is applied.
    """
    x, t_x, age = (np.asarray(c, dtype=np.float64) for c in (summaries.frequency, summaries.recency, summaries.age))
    horizon = policy.value_model.horizon_days
    with np.errstate(all="ignore"):
        spend = expected_spend(gamma_gamma, x, np.asarray(summaries.monetary, dtype=np.float64))
        alive = p_alive(bg_nbd, x, t_x, age, modified)
        clv, before = np.zeros(x.shape), np.zeros(x.shape)
        for end in [*range(STEP_DAYS, horizon, STEP_DAYS), horizon]:
            upto = _purchases_if_alive(bg_nbd, end, x, age, modified) * alive
            clv += (upto - before) * spend / (1 + policy.value.discount_rate) ** (end / 365)
            before = upto
    valid = np.isfinite(alive) & np.isfinite(before) & (np.abs(spend) < _MONEY_LIMIT) & (np.abs(clv) < _MONEY_LIMIT)
    return ValueFigures(
        p_alive=np.round(np.where(valid, alive, 0.0), _DECIMALS),
        expected_purchases=np.round(np.where(valid, before, 0.0), _DECIMALS),
        expected_spend_minor=np.rint(np.where(valid, spend, 0.0)).astype(np.int64),
        clv_minor=np.rint(np.where(valid, clv, 0.0)).astype(np.int64),
        valid=valid,
    )


_MONEY_LIMIT = 2.0**62
_MIN_CUSTOMERS = 10
