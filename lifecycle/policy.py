"""The policy: every threshold the lifecycle rules use, versioned, parsed from TOML.

Thresholds are policy, not code (docs/domain.md). The defaults below are the ones in the
shipped `policy.toml` (a test keeps the two equal); a policy file may set any subset,
but must name its `version`, which is recorded with every decision made under it.
Parsing is pure: the caller reads the file.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import cache
from typing import Annotated

import msgspec

from lifecycle.errors import PolicyError
from schemas.events import ValueModelName


def _bounded(kind: type, low: float, high: float, what: str) -> object:
    return Annotated[kind, msgspec.Meta(ge=low, le=high, description=what)]


# Every threshold within a range the rules can take, so that a policy either loads or is
# refused with its key path and the allowed range (no threshold may make the engine fail
# on every event, overflow or hang). Floats must be finite: the bounds refuse nan and inf.
Days = _bounded(int, 1, 36_500, "days")
DaysOrNever = _bounded(int, 0, 36_500, "days, 0 for never")
OccasionDays = _bounded(int, 1, 366, "days")
Count = _bounded(int, 1, 10_000, "purchases")
# A rhythm is the median of the gaps between purchases: it takes two at least.
RhythmCount = _bounded(int, 2, 1_000, "purchases")
Gaps = _bounded(float, 0.01, 1_000.0, "usual gaps")
Nps = _bounded(int, 0, 10, "an NPS answer")
Csat = _bounded(int, 1, 5, "a CSAT answer")
PerPoint = _bounded(int, 1, 10**9, "minor units")
Points = _bounded(int, 1, 10**15, "points")
Minor = _bounded(int, 0, 10**15, "minor units")
Rate = _bounded(float, 0.0, 10.0, "a yearly rate")
Rate_to_base = _bounded(float, 1e-9, 1e6, "base-currency units per unit")
Years = _bounded(int, 1, 100, "years")
Chance = _bounded(float, 0.0, 1.0, "a probability")
Ratio = _bounded(float, 0.0, 10.0, "margin / revenue")
Confirm = _bounded(int, 1, 1_000, "customers")
Held = _bounded(int, 1, 10_000_000, "records")
EventBytes = _bounded(int, 1_024, 16 * 1024 * 1024, "bytes")
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="an ISO 4217 code")]
Version = Annotated[str, msgspec.Meta(
    pattern="^[!-~]([ -~]{0,62}[!-~])?$",
    description="1 to 64 printable ASCII characters, no space at either end",
)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class StagePolicy(_Section, frozen=True):
    loyal_min_purchases: Count = 4
    loyal_window_days: Days = 365
    advocate_window_days: Days = 365
    advocate_min_nps: Nps = 9
    # A customer's purchases within one period of this many days (UTC days since the
    # epoch) are one purchase occasion, for the ladder, the repeat behaviour and the rhythm.
    occasion_days: OccasionDays = 1


class ActivityPolicy(_Section, frozen=True):
    rhythm_min_purchases: RhythmCount = 3
    rhythm_purchases_kept: RhythmCount = 12
    rhythm_floor_days: Days = 7
    drowsy_gaps: Gaps = 1.5
    half_asleep_gaps: Gaps = 2.5
    dormant_gaps: Gaps = 4.0
    drowsy_days: Days = 60
    half_asleep_days: Days = 120
    dormant_days: Days = 180
    churned_days: Days = 365


class AttitudePolicy(_Section, frozen=True):
    window_days: Days = 365
    promoter_nps: Nps = 9
    detractor_nps: Nps = 6
    satisfied_csat: Csat = 4
    dissatisfied_csat: Csat = 2


class LoyaltyPolicy(_Section, frozen=True):
    high_repeat_purchases: Count = 4
    window_days: Days = 365


class TierPolicy(_Section, frozen=True):
    # Points are earned on revenue over the value policy's rolling window.
    minor_units_per_point: PerPoint = 100
    review_every_days: Days = 365
    silver_points: Points = 300
    gold_points: Points = 1_000
    platinum_points: Points = 2_500


class ValuePolicy(_Section, frozen=True):
    base_currency: Currency = "EUR"
    rates_to_base: dict[Currency, Rate_to_base] = msgspec.field(
        default_factory=lambda: {
            "EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.05, "SEK": 0.087, "CNY": 0.13
        }
    )
    window_days: Days = 365
    # An order is held for refunds this long after its payment (as of the customer's
    # time); a refund later than that matches nothing (see docs/rules.md).
    refund_window_days: Days = 730
    discount_rate: Rate = 0.12
    horizon_years: Years = 5
    acquisition_cost_minor: Minor = 0
    yearly_survival: dict[str, Chance] = msgspec.field(
        default_factory=lambda: {
            "active": 0.8, "drowsy": 0.6, "half_asleep": 0.4, "dormant": 0.2, "churned": 0.0
        }
    )
    normal_band_min_minor: Minor = 30_000
    key_band_min_minor: Minor = 150_000


class ValueModelPolicy(_Section, frozen=True):
    # Live `process` fits BG/NBD and Gamma-Gamma again once the latest fit's cutoff is
    # this many days behind the log's time (0: only by `lifecycle fit-value-model`).
    refit_every_days: DaysOrNever = 7
    # `expected_purchases` and the models' CLV look this far ahead of the cutoff.
    horizon_days: Days = 365
    # The purchase model: BG/NBD, or the modified BG/NBD (`mbg_nbd`), which lets a
    # customer with one purchase drop out too (under BG/NBD they are always alive).
    model: ValueModelName = "bg_nbd"


class RelationshipPolicy(_Section, frozen=True):
    high_margin_ratio: Ratio = 0.3


class TimePolicy(_Section, frozen=True):
    # A record dated further ahead of its partition's confirmed time than this waits until
    # time is confirmed there: one wrong clock must not move time for everyone
    # (lifecycle/partition_time.py).
    clock_max_lead_days: Days = 31
    event_max_lead_days: Days = 366
    # Time is confirmed up to the latest time this many distinct customers have reached
    # (or a clock): records of fewer customers cannot move it.
    confirm_customers: Confirm = 3
    # At most this many records of a partition wait for time; one more is dead-lettered.
    max_held_records: Held = 100_000


class InputPolicy(_Section, frozen=True):
    # A record on the log larger than this is refused (dead-lettered), unread.
    max_event_bytes: EventBytes = 65_536


class Policy(_Section, frozen=True):
    version: Version
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
    except RecursionError:
        raise PolicyError(f"{where}: tables or arrays nested too deeply to be a policy") from None
    try:
        policy = msgspec.convert(raw, Policy)
    except msgspec.ValidationError as error:
        raise PolicyError(f"{where}: {_in_words(str(error))} - fix the policy file") from None
    _check(policy, where)
    return policy


_PATTERNS = {
    "`$.version`": "`version` must be 1 to 64 printable ASCII characters, with no space at either end",
    "`key` in `$.value.rates_to_base`": "every currency under [value.rates_to_base] must be an upper-case "
                                        "ISO 4217 code, such as EUR",
    "`$.value.base_currency`": "`value.base_currency` must be an upper-case ISO 4217 code, such as EUR",
}


def _in_words(message: str) -> str:
    """msgspec's message, said with the key and its whole allowed range (msgspec names
    the one bound crossed), or a pattern in words instead of as a regex."""
    where = message.rsplit(" - at ", 1)[-1]
    if "matching regex" in message:
        return _PATTERNS.get(where, message)
    allowed = _ranges().get(where.split("[")[0].strip("`"))
    if allowed is None or not (" >= " in message or " <= " in message):
        return message
    key = where.strip("`").removeprefix("$.")
    return f"`{key}` must be {allowed}, and the file's value is out of that range"


@cache
def _ranges() -> dict[str, str]:
    """'$.section.key' -> its allowed range in words, from the thresholds' types."""
    out: dict[str, str] = {}

    def walk(info: msgspec.inspect.Type, path: str) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            for field in info.fields:
                walk(field.type, f"{path}.{field.name}")
        elif isinstance(info, msgspec.inspect.DictType):
            walk(info.value_type, path)
        elif isinstance(info, msgspec.inspect.Metadata) and isinstance(info.type, (msgspec.inspect.IntType,
                                                                                      msgspec.inspect.FloatType)):
            kind = "a whole number" if isinstance(info.type, msgspec.inspect.IntType) else "a number"
            what = (info.extra_json_schema or {}).get("description", "")
            out[path] = f"{kind} from {info.type.ge:,} to {info.type.le:,} ({what})"

    walk(msgspec.inspect.type_info(Policy), "$")
    return out


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
    """The orders between thresholds (each one's own range is in its type)."""
    activity, attitude, tier, time, value = policy.activity, policy.attitude, policy.tier, policy.time, policy.value
    orders = (
        (activity.drowsy_gaps <= activity.half_asleep_gaps <= activity.dormant_gaps,
         "activity: need drowsy_gaps <= half_asleep_gaps <= dormant_gaps"),
        (activity.drowsy_days <= activity.half_asleep_days <= activity.dormant_days <= activity.churned_days,
         "activity: need drowsy_days <= half_asleep_days <= dormant_days <= churned_days"),
        (activity.rhythm_min_purchases <= activity.rhythm_purchases_kept,
         "activity: need rhythm_min_purchases <= rhythm_purchases_kept"),
        (attitude.detractor_nps < attitude.promoter_nps, "attitude: need detractor_nps < promoter_nps"),
        (attitude.dissatisfied_csat < attitude.satisfied_csat, "attitude: need dissatisfied_csat < satisfied_csat"),
        (tier.silver_points <= tier.gold_points <= tier.platinum_points,
         "tier: need silver_points <= gold_points <= platinum_points"),
        (time.clock_max_lead_days <= time.event_max_lead_days, "time: need clock_max_lead_days <= event_max_lead_days"),
        (value.normal_band_min_minor <= value.key_band_min_minor,
         "value: need normal_band_min_minor <= key_band_min_minor"),
    )
    return [problem for holds, problem in orders if not holds]


def _check_value(value: ValuePolicy) -> list[str]:
    """What the value rules need beside each threshold's range."""
    problems = []
    if value.base_currency not in value.rates_to_base:
        problems.append(f"value: rates_to_base has no rate for base_currency {value.base_currency}")
    if set(value.yearly_survival) != {"active", "drowsy", "half_asleep", "dormant", "churned"}:
        problems.append("value: yearly_survival needs exactly active, drowsy, half_asleep, dormant, churned")
    return problems
