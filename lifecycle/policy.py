"""The policy: every threshold the lifecycle rules use, versioned, parsed from TOML.

Thresholds are policy, not code (docs/domain.md). The defaults below are the ones in the
shipped `policy.toml` (a test keeps the two equal); a policy file may set any subset,
but must name its `version`, which is recorded with every decision made under it.
Parsing is pure: the caller reads the file.
"""

from __future__ import annotations

import hashlib
import math
import tomllib

import msgspec

from lifecycle.errors import PolicyError


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class StagePolicy(_Section, frozen=True):
    loyal_min_purchases: int = 4
    loyal_window_days: int = 365
    advocate_window_days: int = 365
    advocate_min_nps: int = 9
    # A customer's purchases within one period of this many days (UTC days since the
    # epoch) are one purchase occasion, for the ladder, the repeat behaviour and the rhythm.
    occasion_days: int = 1


class ActivityPolicy(_Section, frozen=True):
    rhythm_min_purchases: int = 3
    rhythm_purchases_kept: int = 12
    rhythm_floor_days: int = 7
    drowsy_gaps: float = 1.5
    half_asleep_gaps: float = 2.5
    dormant_gaps: float = 4.0
    drowsy_days: int = 60
    half_asleep_days: int = 120
    dormant_days: int = 180
    churned_days: int = 365


class AttitudePolicy(_Section, frozen=True):
    window_days: int = 365
    promoter_nps: int = 9
    detractor_nps: int = 6
    satisfied_csat: int = 4
    dissatisfied_csat: int = 2


class LoyaltyPolicy(_Section, frozen=True):
    high_repeat_purchases: int = 4
    window_days: int = 365


class TierPolicy(_Section, frozen=True):
    # Points are earned on revenue over the value policy's rolling window.
    minor_units_per_point: int = 100
    review_every_days: int = 365
    silver_points: int = 300
    gold_points: int = 1_000
    platinum_points: int = 2_500


class ValuePolicy(_Section, frozen=True):
    base_currency: str = "EUR"
    rates_to_base: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.05, "SEK": 0.087, "CNY": 0.13
        }
    )
    window_days: int = 365
    # An order is held for refunds this long after its payment (as of the customer's
    # time); a refund later than that matches nothing (see docs/rules.md).
    refund_window_days: int = 730
    discount_rate: float = 0.12
    horizon_years: int = 5
    acquisition_cost_minor: int = 0
    yearly_survival: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "active": 0.8, "drowsy": 0.6, "half_asleep": 0.4, "dormant": 0.2, "churned": 0.0
        }
    )
    normal_band_min_minor: int = 30_000
    key_band_min_minor: int = 150_000


class ValueModelPolicy(_Section, frozen=True):
    # Live `process` fits BG/NBD and Gamma-Gamma again once the latest fit's cutoff is
    # this many days behind the log's time (0: only by `lifecycle fit-value-model`).
    refit_every_days: int = 7
    # `expected_purchases` and the models' CLV look this far ahead of the cutoff.
    horizon_days: int = 365


class RelationshipPolicy(_Section, frozen=True):
    high_margin_ratio: float = 0.3


class TimePolicy(_Section, frozen=True):
    # A record dated further ahead of its partition's confirmed time than this waits until
    # time is confirmed there: one wrong clock must not move time for everyone
    # (lifecycle/partition_time.py).
    clock_max_lead_days: int = 31
    event_max_lead_days: int = 366
    # Time is confirmed up to the latest time this many distinct customers have reached
    # (or a clock): records of fewer customers cannot move it.
    confirm_customers: int = 3
    # At most this many records of a partition wait for time; one more is dead-lettered.
    max_held_records: int = 100_000


class InputPolicy(_Section, frozen=True):
    # A record on the log larger than this is refused (dead-lettered), unread.
    max_event_bytes: int = 65_536


class Policy(_Section, frozen=True):
    version: str
    stage: StagePolicy = StagePolicy()
    activity: ActivityPolicy = ActivityPolicy()
    attitude: AttitudePolicy = AttitudePolicy()
    loyalty: LoyaltyPolicy = LoyaltyPolicy()
    tier: TierPolicy = TierPolicy()
    value: ValuePolicy = ValuePolicy()
    value_model: ValueModelPolicy = ValueModelPolicy()
    relationship: RelationshipPolicy = RelationshipPolicy()
    time: TimePolicy = TimePolicy()
    input: InputPolicy = InputPolicy()


def parse_policy(text: str, where: str = "policy") -> Policy:
    """A policy from TOML text; `PolicyError` says what is wrong and where."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{where}: not valid TOML: {error}") from None
    try:
        policy = msgspec.convert(raw, Policy)
    except msgspec.ValidationError as error:
        raise PolicyError(f"{where}: {error}") from None
    _check(policy, where)
    return policy


def canonical_policy(policy: Policy) -> bytes:
    """The policy as JSON with every threshold spelled out, keys sorted: the same rules
    give the same bytes whatever the file's layout, comments or omitted defaults."""
    return msgspec.json.encode(policy, order="sorted")


def policy_fingerprint(policy: Policy) -> str:
    """SHA-256 of `canonical_policy`: two policies decide alike exactly when it is equal."""
    return hashlib.sha256(canonical_policy(policy)).hexdigest()


def _check(policy: Policy, where: str) -> None:
    problems = [*_check_thresholds(policy), *_check_value(policy.value)]
    if problems:
        raise PolicyError(f"{where}: " + "; ".join(problems) + " - fix the policy file")


def _check_thresholds(policy: Policy) -> list[str]:
    activity, tier, time = policy.activity, policy.tier, policy.time
    problems = []
    gaps = (activity.drowsy_gaps, activity.half_asleep_gaps, activity.dormant_gaps)
    if not all(map(math.isfinite, gaps)) or not 0 < gaps[0] <= gaps[1] <= gaps[2]:
        problems.append("activity: need 0 < drowsy_gaps <= half_asleep_gaps <= dormant_gaps")
    if not 0 < activity.drowsy_days <= activity.half_asleep_days <= activity.dormant_days <= activity.churned_days:
        problems.append("activity: need 0 < drowsy_days <= half_asleep_days <= dormant_days <= churned_days")
    if not 0 < tier.silver_points <= tier.gold_points <= tier.platinum_points:
        problems.append("tier: need 0 < silver_points <= gold_points <= platinum_points")
    if tier.minor_units_per_point < 1 or tier.review_every_days < 1:
        problems.append("tier: need minor_units_per_point >= 1 and review_every_days >= 1")
    if not 1 <= time.clock_max_lead_days <= time.event_max_lead_days <= 36_500:
        problems.append("time: need 1 <= clock_max_lead_days <= event_max_lead_days <= 36500")
    if not 1 <= time.confirm_customers <= 1_000 or not 1 <= time.max_held_records <= 10_000_000:
        problems.append("time: need 1 <= confirm_customers <= 1000 and 1 <= max_held_records <= 10000000")
    if not 1 <= policy.stage.occasion_days <= 366:
        problems.append("stage: need 1 <= occasion_days <= 366")
    if policy.value_model.refit_every_days < 0 or not 1 <= policy.value_model.horizon_days <= 36_500:
        problems.append("value_model: need refit_every_days >= 0 and 1 <= horizon_days <= 36500")
    if not 1_024 <= policy.input.max_event_bytes <= 16 * 1024 * 1024:
        problems.append("input: need 1024 <= max_event_bytes <= 16777216")
    return problems


def _check_value(value: ValuePolicy) -> list[str]:
    """Rates, survival and discounting within bounds, so that value sums stay exact integers."""
    problems = []
    if value.base_currency not in value.rates_to_base:
        problems.append(f"value: rates_to_base has no rate for base_currency {value.base_currency}")
    if not all(math.isfinite(rate) and 0 < rate <= 1e6 for rate in value.rates_to_base.values()):
        problems.append("value: every rate in rates_to_base must be a number in (0, 1000000]")
    if set(value.yearly_survival) != {"active", "drowsy", "half_asleep", "dormant", "churned"}:
        problems.append("value: yearly_survival needs exactly active, drowsy, half_asleep, dormant, churned")
    if not all(0 <= chance <= 1 for chance in value.yearly_survival.values()):
        problems.append("value: every yearly_survival must lie in [0, 1]")
    if value.refund_window_days < 1:
        problems.append("value: need refund_window_days >= 1")
    if not (math.isfinite(value.discount_rate) and 0 <= value.discount_rate <= 10 and 1 <= value.horizon_years <= 100):
        problems.append("value: need 0 <= discount_rate <= 10 and 1 <= horizon_years <= 100")
    return problems
