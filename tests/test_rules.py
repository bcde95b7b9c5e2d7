"""The lifecycle rules, one table per rule, on hand-written histories (no I/O).

Each history is a list of events of one customer (and clock events), with times in
days after 2025-01-01 UTC; it runs through `LifecycleEngine` on a fresh
`CustomerState`. The expectation is where the customer ends up and/or the exact
lifecycle events `(dimension, from, to, rule)` the history caused. Thresholds come from
the shipped `lifecycle/policy.toml` (docs/domain.md sections 2-5).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

import lifecycle
from lifecycle.engine import LifecycleEngine, lifecycle_event_id
from lifecycle.errors import PolicyError
from lifecycle.policy import Policy, parse_policy, policy_fingerprint
from lifecycle.state import DAY, CustomerState, decode_state, encode_state, epoch_seconds
from schemas import (
    Clock,
    ComplaintFiled,
    ComplaintResolved,
    Contact,
    CustomerErased,
    MembershipJoined,
    MembershipLeft,
    ProfileUpdated,
    Purchase,
    ReferralMade,
    Refund,
    SurveyAnswered,
    Visit,
    encode_event,
)
from schemas.lifecycle_events import EVENT_FOR_DIMENSION, LifecycleEvent

POLICY_FILE = Path(lifecycle.__file__).parent / "policy.toml"
POLICY = parse_policy(POLICY_FILE.read_text(encoding="utf-8"), "policy.toml")
VERSION = "default-2026.12.07"

CUSTOMER = "c-ada"
START = datetime(2025, 1, 1, tzinfo=UTC)
IDS = uuid.UUID("7d3c2a10-5e4f-4b6a-8c9d-0e1f2a3b4c5d")
INITIAL = {
    "stage": "prospect",
    "activity": "active",
    "loyalty_type": "none",
    "loyalty_tier": "none",
    "value_band": "small",
    "relationship_level": "basic",
}


# --- building events ------------------------------------------------------------------


def at(day: float) -> datetime:
    """`day` days after 2025-01-01T00:00Z, to the whole second."""
    return START + timedelta(seconds=round(day * DAY))


def _id(*parts: object) -> uuid.UUID:
    """A fixed id for an event, from what it is: the same history always has the same ids."""
    return uuid.uuid5(IDS, "/".join(map(str, parts)))


def _common(kind: str, day: float, customer: str, *key: object) -> dict:
    return {
        "event_id": _id(kind, customer, day, *key),
        "occurred_at": at(day),
        "source": "test",
        "customer_id": customer,
    }


def purchase(day, order, amount=10_000, currency="EUR", margin=None, customer=CUSTOMER) -> Purchase:
    return Purchase(**_common("purchase", day, customer, order, amount), order_id=order,
                    amount_minor=amount, currency=currency, margin_minor=margin)


def refund(day, order, amount, currency="EUR", customer=CUSTOMER) -> Refund:
    return Refund(**_common("refund", day, customer, order, amount), order_id=order,
                  amount_minor=amount, currency=currency)


def contact(day, direction="inbound", channel="phone", customer=CUSTOMER) -> Contact:
    return Contact(**_common("contact", day, customer, direction), channel=channel, direction=direction)


def visit(day, place="store", customer=CUSTOMER) -> Visit:
    return Visit(**_common("visit", day, customer, place), place=place)


def complaint(day, complaint_id="k1", severity="medium", customer=CUSTOMER) -> ComplaintFiled:
    return ComplaintFiled(**_common("complaint", day, customer, complaint_id), complaint_id=complaint_id,
                          category="service", severity=severity)


def resolved(day, complaint_id="k1", satisfied=True, customer=CUSTOMER) -> ComplaintResolved:
    return ComplaintResolved(**_common("resolved", day, customer, complaint_id), complaint_id=complaint_id,
                             satisfied=satisfied)


def survey(day, nps=None, csat=None, customer=CUSTOMER) -> SurveyAnswered:
    return SurveyAnswered(**_common("survey", day, customer, nps, csat), nps=nps, csat=csat)


def joined(day, programme="club", customer=CUSTOMER) -> MembershipJoined:
    return MembershipJoined(**_common("joined", day, customer, programme), programme=programme)


def left(day, programme="club", customer=CUSTOMER) -> MembershipLeft:
    return MembershipLeft(**_common("left", day, customer, programme), programme=programme)


def referral(day, friend="c-friend", customer=CUSTOMER) -> ReferralMade:
    return ReferralMade(**_common("referral", day, customer, friend), referred_customer_id=friend)


def profile(day, customer=CUSTOMER) -> ProfileUpdated:
    return ProfileUpdated(**_common("profile", day, customer), name="Ada")


def erased(day, customer=CUSTOMER) -> CustomerErased:
    return CustomerErased(**_common("erased", day, customer))


def clock(day) -> Clock:
    return Clock(event_id=_id("clock", day), occurred_at=at(day), source="clock")


def clocks(*days) -> list[Clock]:
    return [clock(day) for day in days]


def purchases(*days, amount=1_000) -> list[Purchase]:
    """One purchase of `amount` per day given, orders o<day>."""
    return [purchase(day, f"o{day}", amount) for day in days]


# --- running histories ----------------------------------------------------------------


@dataclass
class Run:
    state: CustomerState
    events: list[LifecycleEvent]
    causes: list[tuple[object, list[LifecycleEvent]]]

    def changes(self, dimension: str | None = None) -> list[tuple[str, str, str, str]]:
        return [(e.dimension, e.from_value, e.to_value, e.rule)
                for e in self.events if dimension in (None, e.dimension)]

    def moves(self, dimension: str) -> list[tuple[str, str, float]]:
        """(to, rule, day) of each change of `dimension`."""
        return [(e.to_value, e.rule, _day(e.occurred_at)) for e in self.events if e.dimension == dimension]

    def dimensions(self) -> dict[str, str]:
        return {name: getattr(self.state, name) for name in INITIAL}


def _day(moment: datetime) -> float:
    return (moment - START) / timedelta(days=1)


def run(history, policy: Policy = POLICY, customer: str = CUSTOMER) -> Run:
    engine = LifecycleEngine(policy)
    state = CustomerState(customer_id=customer)
    events: list[LifecycleEvent] = []
    causes = []
    for event in history:
        caused = engine.on_clock(state, event) if type(event) is Clock else engine.on_event(state, event)
        causes.append((event, caused))
        events.extend(caused)
    return Run(state, events, causes)


def stage(frm, to, rule):
    return ("stage", frm, to, f"stage.{rule}")


# --- the policy -----------------------------------------------------------------------


def test_the_shipped_policy_file_is_the_defaults():
    assert POLICY == Policy(version=VERSION)


def test_a_policy_may_name_only_its_version():
    assert parse_policy('version = "mine"') == Policy(version="mine")


def test_a_custom_policy_changes_a_thresholds_effect():
    history = [purchase(0, "o1"), *clocks(30, 59, 60)]
    assert run(history).moves("activity") == [("drowsy", "activity.drowsy_by_fixed_thresholds", 60)]
    sooner = parse_policy('version = "sooner"\n[activity]\ndrowsy_days = 30\n')
    assert sooner.activity.drowsy_days == 30 and sooner.activity.half_asleep_days == 120
    faster = run(history, sooner)
    assert faster.moves("activity") == [("drowsy", "activity.drowsy_by_fixed_thresholds", 30)]
    assert {e.policy_version for e in faster.events} == {"sooner"}


def test_a_custom_policy_changes_the_ladder():
    easy = parse_policy('version = "easy"\n[stage]\nloyal_min_purchases = 2\n')
    assert run(purchases(0, 10)).state.stage == "repeat"
    assert run(purchases(0, 10), easy).state.stage == "loyal"


def test_a_policys_fingerprint_is_its_rules_not_its_layout():
    spelled_out = parse_policy('# the same rules\nversion = "mine"\n[stage]\nloyal_min_purchases = 4\n')
    assert policy_fingerprint(spelled_out) == policy_fingerprint(parse_policy('version = "mine"'))
    stricter = parse_policy('version = "mine"\n[stage]\nloyal_min_purchases = 5\n')
    assert policy_fingerprint(stricter) != policy_fingerprint(spelled_out)
    rates = ('version = "v"\n[value.rates_to_base]\nEUR = 1.0\nUSD = 0.9\n', 'version = "v"\n[value.rates_to_base]\nUSD = 0.9\nEUR = 1.0\n')
    assert policy_fingerprint(parse_policy(rates[0])) == policy_fingerprint(parse_policy(rates[1]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = ", "where.toml: not valid TOML"),
        ("", "where.toml: Object missing required field `version`"),
        ("version = 7", "where.toml: Expected `str`, got `int` - at `$.version`"),
        ('version = "v"\n[activity]\ndrowsy_days = "sixty"',
         "where.toml: Expected `int`, got `str` - at `$.activity.drowsy_days`"),
        ('version = "v"\n[stage]\nloyal_min_purchase = 3',
         "where.toml: Object contains unknown field `loyal_min_purchase` - at `$.stage`"),
        ('version = "v"\n[stages]\nloyal_min_purchases = 3', "where.toml: Object contains unknown field `stages`"),
        ('version = "v"\n[activity]\ndrowsy_days = 200',
         "where.toml: activity: need drowsy_days <= half_asleep_days <= dormant_days <= churned_days"
         " - fix the policy file"),
        ('version = "v"\n[activity]\ndrowsy_gaps = 0',
         "where.toml: `activity.drowsy_gaps` must be a number from 0.01 to 1,000.0 (usual gaps)"),
        ('version = "v"\n[tier]\nsilver_points = 2000',
         "where.toml: tier: need silver_points <= gold_points <= platinum_points"),
        ('version = "v"\n[activity]\nrhythm_min_purchases = 0',
         "where.toml: `activity.rhythm_min_purchases` must be a whole number from 2 to 1,000 (purchases)"),
        ('version = "v"\n[tier]\nreview_every_days = 9223372036854775807',
         "where.toml: `tier.review_every_days` must be a whole number from 1 to 36,500 (days)"),
        ('version = "v"\n[stage]\nloyal_window_days = -365',
         "where.toml: `stage.loyal_window_days` must be a whole number from 1 to 36,500 (days)"),
        ('version = "v"\n[relationship]\nhigh_margin_ratio = nan',
         "where.toml: `relationship.high_margin_ratio` must be a number from 0.0 to 10.0"),
        ('version = "v"\n[value]\nacquisition_cost_minor = 9223372036854775807',
         "where.toml: `value.acquisition_cost_minor` must be a whole number from 0 to"),
        ('version = "v"\n[attitude]\npromoter_nps = 5', "where.toml: attitude: need detractor_nps < promoter_nps"),
        ('version = ""', "where.toml: `version` must be 1 to 64 printable ASCII characters"),
        ('version = "v\\u009b2J"', "where.toml: `version` must be 1 to 64 printable ASCII characters"),
        ('version = "v"\n' + "x = " + "[" * 5_000 + "]" * 5_000, "where.toml: tables or arrays nested too deeply"),
        ('version = "v"\n[value]\nbase_currency = "JPY"',
         "where.toml: value: rates_to_base has no rate for base_currency JPY"),
        ('version = "v"\n[value.yearly_survival]\nactive = 0.9',
         "where.toml: value: yearly_survival needs exactly active, drowsy, half_asleep, dormant, churned"),
    ],
    ids=["toml", "no-version", "version-type", "value-type", "unknown-key", "unknown-section",
         "activity-days", "activity-gaps", "tier-order", "rhythm-zero", "review-overflow", "negative-window",
         "nan", "cost-overflow", "nps-order", "empty-version", "version-escape", "deep", "base-currency",
         "survival-keys"],
)
def test_a_bad_policy_file_says_what_is_wrong_and_where(text, message):
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, "where.toml")
    assert str(raised.value).startswith(message), str(raised.value)


def test_several_problems_are_reported_together():
    text = 'version = "v"\n[activity]\ndrowsy_days = 200\n[tier]\nsilver_points = 2000\n'
    with pytest.raises(PolicyError, match="drowsy_days.*; tier: need"):
        parse_policy(text)


# --- the ladder (docs/domain.md section 2) --------------------------------------------

LOYAL = purchases(0, 30, 60, 90)  # four purchases within a year: a loyal client on day 90

LADDER_CASES = {
    "a profile alone: prospect": ([profile(0)], "prospect", []),
    "an outbound contact is not intent": ([contact(0, "outbound")], "prospect", []),
    "an inbound contact qualifies": (
        [contact(0, "inbound")], "qualified", [stage("prospect", "qualified", "qualified_by_intent")]),
    "a visit qualifies": ([visit(0, "web")], "qualified", [stage("prospect", "qualified", "qualified_by_intent")]),
    "a first purchase without intent": (
        [purchase(0, "o1")], "first_time", [stage("prospect", "first_time", "first_purchase")]),
    "qualified, then a first purchase": (
        [visit(0), purchase(1, "o1")], "first_time",
        [stage("prospect", "qualified", "qualified_by_intent"), stage("qualified", "first_time", "first_purchase")]),
    "a second purchase: repeat": (
        purchases(0, 5), "repeat",
        [stage("prospect", "first_time", "first_purchase"), stage("first_time", "repeat", "repeat_purchases")]),
    "three orders in one hour are one purchase occasion: first-time": (
        [purchase(0, "o1"), purchase(0.01, "o2"), purchase(0.04, "o3")], "first_time",
        [stage("prospect", "first_time", "first_purchase")]),
    "orders on two days are two occasions: repeat": (
        [purchase(0.9, "o1"), purchase(1.1, "o2")], "repeat",
        [stage("prospect", "first_time", "first_purchase"), stage("first_time", "repeat", "repeat_purchases")]),
    "two purchases of one order are one purchase": (
        [purchase(0, "o1", 500), purchase(1, "o1", 700)], "first_time",
        [stage("prospect", "first_time", "first_purchase")]),
    "four purchases within the year: loyal": (
        LOYAL, "loyal",
        [stage("prospect", "first_time", "first_purchase"), stage("first_time", "repeat", "repeat_purchases"),
         stage("repeat", "loyal", "loyal_regular_purchases")]),
    "four purchases spread over two years: repeat": (purchases(0, 200, 400, 600), "repeat", None),
    "loyal, then enrolled: member": (
        [*LOYAL, joined(100)], "member", None),
    "enrolled first, member as soon as loyal": (
        [joined(0), *purchases(1, 2, 3, 4)], "member",
        [stage("prospect", "first_time", "first_purchase"), stage("first_time", "repeat", "repeat_purchases"),
         stage("repeat", "member", "member_enrolled_while_loyal")]),
    "enrolled but not loyal: no member": ([joined(0), *purchases(1, 2)], "repeat", None),
    "a member refers a friend: advocate": ([*LOYAL, joined(100), referral(110)], "advocate", None),
    "a loyal client refers a friend: advocate": ([*LOYAL, referral(110)], "advocate", None),
    "a loyal promoter (NPS 9): advocate": (
        [*LOYAL, survey(100, nps=9)], "advocate", None),
    "a loyal passive (NPS 8): still loyal": ([*LOYAL, survey(100, nps=8)], "loyal", None),
    "a first-time customer's referral is not advocacy": ([purchase(0, "o1"), referral(1)], "first_time", None),
    "an open complaint keeps a loyal buyer repeat": ([*purchases(0, 30, 60), complaint(70), purchase(90, "o90")],
                                                     "repeat", None),
    "a negative attitude keeps a loyal buyer repeat": ([*purchases(0, 30, 60), survey(70, nps=3),
                                                       purchase(90, "o90")], "repeat", None),
    "a neutral attitude allows loyal": ([*purchases(0, 30, 60), survey(70, nps=7), purchase(90, "o90")],
                                        "loyal", None),
    "a resolved complaint no longer blocks loyal": (
        [*purchases(0, 30, 60), complaint(70), resolved(71, satisfied=True), purchase(90, "o90")], "loyal", None),
}


@pytest.mark.parametrize(("history", "expected", "changes"), LADDER_CASES.values(), ids=LADDER_CASES.keys())
def test_the_ladder(history, expected, changes):
    result = run(history)
    assert result.state.stage == expected
    if changes is not None:
        assert result.changes("stage") == changes


def test_the_whole_ladder_step_by_step():
    history = [contact(0, "outbound"), contact(1, "inbound"), purchase(2, "o1"), purchase(10, "o2"),
               purchase(20, "o3"), purchase(30, "o4"), joined(35), referral(40)]
    result = run(history)
    assert result.moves("stage") == [
        ("qualified", "stage.qualified_by_intent", 1),
        ("first_time", "stage.first_purchase", 2),
        ("repeat", "stage.repeat_purchases", 10),
        ("loyal", "stage.loyal_regular_purchases", 30),
        ("member", "stage.member_enrolled_while_loyal", 35),
        ("advocate", "stage.advocate_referral_or_promoter", 40),
    ]


def test_leaving_the_programme_steps_a_member_down_to_loyal():
    result = run([*LOYAL, joined(100), left(120)])
    assert result.changes("stage")[-2:] == [
        stage("loyal", "member", "member_enrolled_while_loyal"),
        stage("member", "loyal", "loyal_regular_purchases"),
    ]


def test_a_loyal_client_steps_down_when_purchases_leave_the_window():
    """The upper rungs depend on a window: time alone moves a customer down."""
    result = run([*LOYAL, clock(364), clock(365)])
    assert result.moves("stage")[-1] == ("repeat", "stage.repeat_purchases", 365)
    _, caused = result.causes[-1]
    assert ("stage", "loyal", "repeat", "stage.repeat_purchases") in [
        (e.dimension, e.from_value, e.to_value, e.rule) for e in caused]


def test_an_advocate_by_referral_steps_down_when_the_referral_is_a_year_old():
    # Purchases keep the customer loyal throughout; only the referral's window decides advocacy.
    history = [*purchases(0, 10, 20, 30), referral(35), *purchases(300, 310, 320, 330), clock(399.99), clock(400)]
    assert run(history).moves("stage")[-2:] == [
        ("advocate", "stage.advocate_referral_or_promoter", 35),
        ("loyal", "stage.loyal_regular_purchases", 400),
    ]


# --- decline by time alone (activity, docs/domain.md section 2) -----------------------

FIXED = "fixed_thresholds"
OWN = "own_rhythm"
CHURNED = ("churned", "activity.churned_after_no_purchase")

DECLINE_CASES = {
    "one purchase: fixed thresholds (60/120/180/365 days)": (
        purchases(0), clocks(30, 59.99, 60, 119.99, 120, 179.99, 180, 364.99, 365, 500),
        [("drowsy", FIXED, 60), ("half_asleep", FIXED, 120), ("dormant", FIXED, 180), (*CHURNED, 365)]),
    "two purchases: still fixed thresholds, from the last": (
        purchases(0, 10), clocks(69.99, 70, 130, 190, 374.99, 375),
        [("drowsy", FIXED, 70), ("half_asleep", FIXED, 130), ("dormant", FIXED, 190), (*CHURNED, 375)]),
    "a 10-day rhythm: drowsy 15, half asleep 25, dormant 40 days after": (
        purchases(0, 10, 20), clocks(34.99, 35, 44.99, 45, 59.99, 60, 384.99, 385),
        [("drowsy", OWN, 35), ("half_asleep", OWN, 45), ("dormant", OWN, 60), (*CHURNED, 385)]),
    "the rhythm is the median gap (10 days), not the mean (8.67)": (
        purchases(0, 10, 20, 26), clocks(40.99, 41, 50.99, 51, 65.99, 66),
        [("drowsy", OWN, 41), ("half_asleep", OWN, 51), ("dormant", OWN, 66)]),
    "a daily rhythm counts as the 7-day floor": (
        purchases(0, 1, 2), clocks(12.49, 12.5, 19.49, 19.5, 29.99, 30),
        [("drowsy", OWN, 12.5), ("half_asleep", OWN, 19.5), ("dormant", OWN, 30)]),
    "a 200-day rhythm: churned after a year, whatever the rhythm": (
        purchases(0, 200, 400), clocks(699.99, 700, 764.99, 765),
        [("drowsy", OWN, 700), (*CHURNED, 765)]),
    "one late clock: each decline at its own moment, as with a clock at each": (
        purchases(0), clocks(200), [("drowsy", FIXED, 60), ("half_asleep", FIXED, 120), ("dormant", FIXED, 180)]),
    "a prospect declines from their last own activity": (
        [contact(0, "inbound"), visit(10)], clocks(69.99, 70, 375),
        [("drowsy", FIXED, 70), ("half_asleep", FIXED, 130), ("dormant", FIXED, 190), (*CHURNED, 375)]),
    "an outbound contact is not the customer's activity": (
        [visit(0), contact(50, "outbound")], clocks(60),
        [("drowsy", FIXED, 60)]),
    "a visit does not keep a buyer active": (
        [purchase(0, "o1"), visit(50)], clocks(60), [("drowsy", FIXED, 60)]),
}


@pytest.mark.parametrize(("history", "ticks", "expected"), DECLINE_CASES.values(), ids=DECLINE_CASES.keys())
def test_decline_by_clock_events_alone(history, ticks, expected):
    result = run([*history, *ticks])
    by_ticks = [e for cause, caused in result.causes[len(history):] for e in caused]
    moves = [(e.to_value, e.rule, _day(e.occurred_at)) for e in by_ticks if e.dimension == "activity"]
    assert [(to, rule) for to, rule, _ in moves] == [
        (to, rule if rule.startswith("activity.") else f"activity.{to}_by_{rule}") for to, rule, _ in expected]
    assert [day for *_, day in moves] == pytest.approx([day for *_, day in expected], abs=1e-5)
    # Time alone caused every decline: no event caused it, and its id names no clock.
    for event in by_ticks:
        assert event.caused_by == []
        name = f"time/{CUSTOMER}/{event.sequence}/{event.dimension}/{event.to_value}"
        assert event.event_id == lifecycle_event_id(name)
    assert result.state.now == epoch_seconds(ticks[-1].occurred_at)


def test_declines_do_not_depend_on_which_clocks_reveal_them():
    """Hourly clocks, a nightly one, one a year later or none until the next purchase:
    the same lifecycle events, ids included, at the same moments."""
    history = [purchase(0, "o1"), purchase(20, "o2"), purchase(31, "o3")]
    comeback = purchase(420, "o4")
    hourly = clocks(*(h / 24 for h in range(24 * 32, 24 * 419, 7)))
    ways = {
        "hourly": [*history, *hourly, comeback],
        "nightly": [*history, *clocks(*range(32, 420)), comeback],
        "a year later": [*history, clock(400), comeback],
        "none": [*history, comeback],
    }
    derived = {name: [encode_event(e) for e in run(stream).events] for name, stream in ways.items()}
    assert derived["hourly"] == derived["nightly"] == derived["a year later"] == derived["none"]
    assert len(run(ways["none"]).moves("activity")) == 5


def test_a_clock_before_any_deadline_changes_nothing():
    result = run([purchase(0, "o1"), *clocks(1, 2, 10, 59)])
    assert [caused for event, caused in result.causes if type(event) is Clock] == [[], [], [], []]


def test_no_clock_needed_the_next_event_brings_the_decline_first():
    """Time first moves to the event's time: the decline it passes is decided first, at
    its own moment (day 60), caused by time alone; then the event."""
    result = run([purchase(0, "o1"), survey(100, csat=3)])
    assert result.changes("activity") == [("activity", "active", "drowsy", "activity.drowsy_by_fixed_thresholds")]
    assert result.moves("activity")[0][2] == 60
    (decline,) = (e for e in result.events if e.dimension == "activity")
    assert decline.caused_by == []


def test_one_moment_gives_one_change_per_dimension():
    """An event at the very moment of a deadline is decided with it: the customer turns
    drowsy on day 60 and buys on day 60, so stays active (one decision, no pair of
    changes with the same time)."""
    result = run([purchase(0, "o1"), purchase(60, "o2")])
    assert result.changes("activity") == []


# --- win-back -------------------------------------------------------------------------

WIN_BACK = ("active", "activity.win_back")

WIN_BACK_CASES = {
    "after dormancy": (
        [purchase(0, "o1"), clock(180), purchase(200, "o2")],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED), WIN_BACK], 1),
    "after churn": (
        [purchase(0, "o1"), *clocks(60, 120, 180, 365), purchase(400, "o2")],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED), CHURNED, WIN_BACK], 1),
    "a drowsy buyer coming back is no win-back": (
        [purchase(0, "o1"), clock(60), purchase(70, "o2")],
        [("drowsy", FIXED), ("active", "activity.active")], 0),
    "a half-asleep buyer coming back is no win-back": (
        [purchase(0, "o1"), clock(120), purchase(130, "o2")],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("active", "activity.active")], 0),
    "without clocks the purchase first brings each decline at its moment, then wins back": (
        [purchase(0, "o1"), purchase(400, "o2")],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED), CHURNED, WIN_BACK], 1),
    "two win-backs are counted": (
        [purchase(0, "o1"), clock(200), purchase(200, "o2"), clock(400), purchase(401, "o3")],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED), WIN_BACK,
         ("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED), WIN_BACK], 2),
    "a visit does not wake a sleeper": (
        [purchase(0, "o1"), clock(200), visit(210), contact(211)],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED)], 0),
    "a purchase fully refunded at once wins nobody back": (
        [purchase(0, "o1"), clock(200), refund(199, "o2", 500), purchase(201, "o2", 500)],
        [("drowsy", FIXED), ("half_asleep", FIXED), ("dormant", FIXED)], 0),
}


@pytest.mark.parametrize(("history", "expected", "win_backs"), WIN_BACK_CASES.values(), ids=WIN_BACK_CASES.keys())
def test_win_back(history, expected, win_backs):
    result = run(history)
    assert [(to, rule) for to, rule, _ in result.moves("activity")] == [
        (to, rule if rule.startswith("activity.") else f"activity.{to}_by_{rule}") for to, rule in expected]
    assert result.state.win_backs == win_backs


def test_a_late_purchase_from_before_the_dormancy_is_no_win_back():
    """A win-back is a purchase after dormancy (docs/domain.md section 2). A late purchase dated
    day 150 shows the customer was never dormant (dormancy would begin on day 180 without
    it): the activity is corrected to active, but nobody was won back."""
    result = run([purchase(0, "o1", 1_000), clock(200), purchase(150, "o2", 1_000)])
    assert result.moves("activity") == [
        ("drowsy", "activity.drowsy_by_fixed_thresholds", 60),
        ("half_asleep", "activity.half_asleep_by_fixed_thresholds", 120),
        ("dormant", "activity.dormant_by_fixed_thresholds", 180),
        ("active", "activity.active", 150),
    ]
    assert result.state.win_backs == 0


def test_a_late_purchase_after_the_dormancy_began_is_a_win_back():
    result = run([purchase(0, "o1", 1_000), clock(200), purchase(190, "o2", 1_000)])
    assert result.moves("activity")[-1] == ("active", "activity.win_back", 190)
    assert result.state.win_backs == 1


def test_a_win_back_is_caused_by_the_purchase():
    back = purchase(200, "o2")
    result = run([purchase(0, "o1"), clock(180), back])
    (event,) = [e for e in result.events if e.rule == "activity.win_back"]
    assert event.caused_by == [back.event_id] and event.occurred_at == back.occurred_at
    assert (event.from_value, event.to_value) == ("dormant", "active")


# --- the programme tier: up at once, down only at review ------------------------------


TIER_CASES = {
    "a non-member has no tier": ([purchase(0, "o1", 500_000)], []),
    "an upgrade happens at once": (
        [joined(0), purchase(1, "o1", 30_000), purchase(2, "o2", 69_999), purchase(3, "o3", 101)],
        [("silver", "loyalty_tier.points_earned", 1), ("gold", "loyalty_tier.points_earned", 3)]),
    "points earned before joining count on joining": (
        [purchase(0, "o1", 250_000), joined(10)], [("platinum", "loyalty_tier.points_earned", 10)]),
    "points are earned on base-currency revenue": (
        [joined(0), purchase(1, "o1", 100_000, "SEK")], []),  # 8,700 EUR cents: 87 points
    "gold kept after the points leave, dropped at the anniversary review": (
        [purchase(0, "o1", 100_000), joined(100), *clocks(364, 365, 366, 464), clock(465), clock(900)],
        [("gold", "loyalty_tier.points_earned", 100), ("none", "loyalty_tier.anniversary_review", 465)]),
    "a review keeps a tier the points still earn": (
        [joined(0), purchase(1, "o1", 100_000), *clocks(365, 366, 729)],
        [("gold", "loyalty_tier.points_earned", 1)]),
    "the next anniversary reviews again": (
        [joined(0), purchase(1, "o1", 100_000), *clocks(365, 366, 729, 730)],
        [("gold", "loyalty_tier.points_earned", 1), ("none", "loyalty_tier.anniversary_review", 730)]),
    "a review may step down to the tier still earned": (
        [purchase(0, "o1", 70_000), joined(100), purchase(200, "o2", 40_000), *clocks(365, 465)],
        [("silver", "loyalty_tier.points_earned", 100), ("gold", "loyalty_tier.points_earned", 200),
         ("silver", "loyalty_tier.anniversary_review", 465)]),
    "a refund does not lower the tier before the review": (
        [joined(0), purchase(1, "o1", 100_000), refund(2, "o1", 100_000), clock(364), clock(365)],
        [("gold", "loyalty_tier.points_earned", 1), ("none", "loyalty_tier.anniversary_review", 365)]),
    "leaving the programme drops the tier at once": (
        [joined(0), purchase(1, "o1", 100_000), left(50)],
        [("gold", "loyalty_tier.points_earned", 1), ("none", "loyalty_tier.not_a_member", 50)]),
}


@pytest.mark.parametrize(("history", "expected"), TIER_CASES.values(), ids=TIER_CASES.keys())
def test_loyalty_tier(history, expected):
    assert run(history).moves("loyalty_tier") == expected


def test_points_leave_the_window_while_the_tier_stays():
    result = run([purchase(0, "o1", 100_000), joined(100), clock(365)])
    assert result.state.points == 0 and result.state.current_value_minor == 0
    assert result.state.loyalty_tier == "gold"
    assert result.state.next_review_at == epoch_seconds(at(465))


# --- refunds --------------------------------------------------------------------------


def test_a_refund_undoing_the_only_purchase_is_no_purchase():
    result = run([purchase(0, "o1", 50_000), refund(3, "o1", 50_000)])
    assert result.changes() == [
        stage("prospect", "first_time", "first_purchase"),
        ("value_band", "small", "normal", "value_band.normal_clv"),
        ("relationship_level", "basic", "reactive", "relationship_level.normal_low_margin"),
        stage("first_time", "prospect", "prospect"),
        ("value_band", "normal", "small", "value_band.small_clv"),
        ("relationship_level", "reactive", "basic", "relationship_level.small_low_margin"),
    ]
    state = result.state
    assert (state.purchases, state.historical_value_minor, state.current_value_minor, state.clv_minor,
            state.points) == (0, 0, 0, 0, 0)


REFUND_CASES = {
    "only purchase, intent shown: back to qualified": (
        [visit(0), purchase(1, "o1"), refund(2, "o1", 10_000)], "qualified", 0, 0),
    "only purchase, no intent: back to prospect": (
        [purchase(1, "o1"), refund(2, "o1", 10_000)], "prospect", 0, 0),
    "a partial refund: still a purchase, net value": (
        [purchase(1, "o1"), refund(2, "o1", 4_000)], "first_time", 1, 6_000),
    "two partial refunds that add up to the whole": (
        [purchase(1, "o1"), refund(2, "o1", 4_000), refund(3, "o1", 6_000)], "prospect", 0, 0),
    "one of two purchases refunded: first_time again": (
        [purchase(1, "o1"), purchase(2, "o2", 5_000), refund(3, "o2", 5_000)], "first_time", 1, 10_000),
    "a refund seen before its purchase (late purchase)": (
        [refund(5, "o1", 10_000), purchase(3, "o1", 10_000)], "prospect", 0, 0),
    "a refund of an unknown order changes no value": (
        [purchase(1, "o1"), refund(2, "o9", 3_000)], "first_time", 1, 10_000),
    "refunded margin: value is margin net of the refunded share": (
        [purchase(1, "o1", 10_000, margin=4_000), refund(2, "o1", 5_000)], "first_time", 1, 2_000),
    "refunding more than paid counts no negative value": (
        [purchase(1, "o1", 10_000), refund(2, "o1", 15_000)], "prospect", 0, 0),
    # The refund window (730 days from the payment, as of the customer's time).
    "a refund within the window, after the value window: lowers the history": (
        [purchase(1, "o1", 10_000), refund(700, "o1", 10_000)], "prospect", 0, 0),
    "a refund after the window matches nothing": (
        [purchase(1, "o1", 10_000), refund(800, "o1", 10_000)], "first_time", 1, 10_000),
    "a refund within the window, folded when the customer's time is past it: nothing": (
        [purchase(1, "o1", 10_000), visit(800), refund(700, "o1", 10_000)], "first_time", 1, 10_000),
    "a purchase seen long after its refund, past the window: no netting": (
        [refund(5, "o1", 10_000), visit(800), purchase(3, "o1", 10_000)], "first_time", 1, 10_000),
}


@pytest.mark.parametrize(("history", "expected_stage", "count", "value"), REFUND_CASES.values(),
                         ids=REFUND_CASES.keys())
def test_refunds(history, expected_stage, count, value):
    state = run(history).state
    assert (state.stage, state.purchases, state.historical_value_minor) == (expected_stage, count, value)


def test_orders_are_held_only_as_long_as_a_refund_can_match_them():
    """A state holds at most the orders of the refund window: older ones are dropped."""
    result = run([purchase(day, f"o{day}", 1_000) for day in range(0, 1_500, 30)])
    held = sorted(order.at for order in result.state.orders.values())
    assert held[0] > epoch_seconds(at(1_470 - 730)) and len(held) < 1_500 // 30


def test_a_refunded_repeat_customer_steps_down():
    result = run([*purchases(0, 10), refund(11, "o10", 1_000)])
    assert result.changes("stage")[-1] == stage("repeat", "first_time", "first_purchase")


# --- complaints and service recovery (docs/domain.md section 5) -----------------------

LOYAL_10 = purchases(0, 10, 20, 30)  # loyal from day 30, a 10-day rhythm (drowsy after day 45)


def test_a_complaint_and_a_satisfied_recovery():
    result = run([*LOYAL_10, complaint(40, "k1", "high"), resolved(42, "k1", satisfied=True)])
    assert result.changes() == [
        stage("prospect", "first_time", "first_purchase"),
        stage("first_time", "repeat", "repeat_purchases"),
        stage("repeat", "loyal", "loyal_regular_purchases"),
        ("loyalty_type", "none", "spurious", "loyalty_type.high_repeat_without_positive_attitude"),
        # The open complaint: no longer loyal (a negative attitude besides).
        stage("loyal", "repeat", "repeat_purchases"),
        # Resolved to the customer's satisfaction: loyal again, and a positive attitude.
        stage("repeat", "loyal", "loyal_regular_purchases"),
        ("loyalty_type", "spurious", "true", "loyalty_type.positive_attitude_high_repeat"),
    ]
    assert [_day(e.occurred_at) for e in result.events[-3:]] == [40, 42, 42]
    state = result.state
    assert state.attitude == "positive"
    assert state.open_complaints == {}
    assert (state.complaints_filed, state.complaints_resolved, state.recoveries_satisfied) == (1, 1, 1)
    assert state.resolve_seconds_total == 2 * DAY


def test_an_open_complaint_makes_the_attitude_negative():
    state = run([*LOYAL_10, complaint(40)]).state
    assert (state.attitude, state.stage, len(state.open_complaints)) == ("negative", "repeat", 1)


def test_an_unsatisfied_recovery_keeps_the_customer_off_loyal():
    result = run([*LOYAL_10, complaint(40), resolved(43, satisfied=False)])
    state = result.state
    assert (state.stage, state.attitude) == ("repeat", "negative")
    assert (state.complaints_resolved, state.recoveries_satisfied, state.resolve_seconds_total) == (1, 0, 3 * DAY)


def test_resolve_time_adds_up_over_complaints():
    history = [*LOYAL_10, complaint(40, "k1"), complaint(40.5, "k2"), resolved(41, "k2"), resolved(43, "k1")]
    state = run(history).state
    assert (state.complaints_filed, state.complaints_resolved, state.recoveries_satisfied) == (2, 2, 2)
    assert state.resolve_seconds_total == round(0.5 * DAY) + 3 * DAY
    assert state.stage == "loyal"


def test_a_resolution_seen_before_its_complaint_closes_it():
    """Late events land where they belong (lifecycle/facts.py): a resolution that reaches
    the engine before its (late) complaint leaves no complaint open, as a refund seen
    before its purchase leaves no purchase."""
    history = [*LOYAL_10, resolved(40, "k1", satisfied=True), complaint(38, "k1")]
    state = run(history).state
    assert state.open_complaints == {}
    assert (state.complaints_filed, state.complaints_resolved, state.recoveries_satisfied) == (1, 1, 1)
    assert state.resolve_seconds_total == 2 * DAY
    assert (state.stage, state.attitude) == ("loyal", "positive")
    # ... and nothing reopens it later.
    assert run([*history, clock(800)]).state.open_complaints == {}


def test_a_day_of_orders_is_one_occasion_for_the_rhythm_and_the_windows():
    """Three orders within an hour, three times ten days apart: a 10-day rhythm (not
    the 7-day floor of gaps of minutes), and three occasions in the window, not nine:
    not loyal (four are needed)."""
    days = [0, 10, 20]
    result = run([purchase(day + hour / 24, f"o{day}-{hour}") for day in days for hour in range(3)])
    state = result.state
    assert (state.purchases, state.purchase_occasions, state.stage) == (9, 3, "repeat")
    assert state.usual_gap == 10 * DAY
    assert result.moves("activity") == []
    later = run([*(purchase(day + hour / 24, f"o{day}-{hour}") for day in days for hour in range(3)), clock(36)])
    # Silence runs from the last purchase (day 20, 02:00), 1.5 rhythms of 10 days.
    assert later.moves("activity") == [("drowsy", "activity.drowsy_by_own_rhythm", pytest.approx(35 + 2 / 24))]


def test_a_fully_refunded_order_leaves_its_day_an_occasion_only_if_another_order_of_it_counts():
    two = run([purchase(0, "o1"), purchase(0.5, "o2"), purchase(5, "o3"), refund(6, "o2", 10_000)]).state
    assert (two.purchases, two.purchase_occasions, two.stage) == (2, 2, "repeat")
    one = run([purchase(0, "o1"), purchase(5, "o3"), refund(6, "o1", 10_000)]).state
    assert (one.purchases, one.purchase_occasions, one.stage) == (1, 1, "first_time")


def test_a_resolution_of_a_complaint_never_filed_counts_for_nothing():
    """Service recovery needs a failure to recover from: a resolution whose complaint
    id was never filed moves no attitude and counts no resolution; if the complaint
    comes later (a late event), both count then."""
    orphan = run([*LOYAL_10, resolved(40, "k-none", satisfied=True)])
    assert (orphan.state.attitude, orphan.state.loyalty_type) == ("neutral", "spurious")
    assert (orphan.state.complaints_resolved, orphan.state.recoveries_satisfied) == (0, 0)
    assert orphan.changes() == run(LOYAL_10).changes()
    later = run([*LOYAL_10, resolved(40, "k-none", satisfied=True), complaint(41, "k-none")])
    assert (later.state.complaints_resolved, later.state.attitude) == (1, "positive")


def test_one_of_two_complaints_still_open_keeps_the_customer_off_loyal():
    state = run([*LOYAL_10, complaint(40, "k1"), complaint(40, "k2"), resolved(41, "k1")]).state
    assert state.stage == "repeat" and list(state.open_complaints) == ["k2"]


def test_a_satisfied_recovery_counts_for_a_year():
    result = run([*purchases(0), complaint(1), resolved(2), clock(366), clock(367)])  # leaves on day 2 + 365
    assert result.state.attitude == "neutral"
    assert result.moves("loyalty_type") == [
        ("latent", "loyalty_type.positive_attitude_low_repeat", 2),
        ("none", "loyalty_type.neither", 367),
    ]


# --- attitude and the loyalty type (docs/domain.md section 3) -------------------------

LOYALTY_TYPE_CASES = {
    "none: one purchase, no signal": (purchases(0), "neutral", "none"),
    "latent: a promoter who rarely buys": ([*purchases(0), survey(1, nps=10)], "positive", "latent"),
    "latent: a referral is a positive attitude": ([*purchases(0), referral(1)], "positive", "latent"),
    "spurious: buys often, no positive attitude": (purchases(0, 10, 20, 30), "neutral", "spurious"),
    "spurious: buys often, dissatisfied": ([*purchases(0, 10, 20, 30), survey(31, csat=1)], "negative", "spurious"),
    "true: buys often and is satisfied": ([*purchases(0, 10, 20, 30), survey(31, csat=5)], "positive", "true"),
    "a detractor and a satisfied CSAT cancel out": (
        [*purchases(0, 10, 20, 30), survey(31, nps=2, csat=5)], "neutral", "spurious"),
    "a later answer replaces an earlier one": (
        [*purchases(0), survey(1, csat=5), survey(2, csat=2)], "negative", "none"),
}


@pytest.mark.parametrize(("history", "attitude", "loyalty_type"), LOYALTY_TYPE_CASES.values(),
                         ids=LOYALTY_TYPE_CASES.keys())
def test_loyalty_type(history, attitude, loyalty_type):
    state = run(history).state
    assert (state.attitude, state.loyalty_type) == (attitude, loyalty_type)


def test_high_repeat_needs_four_purchases_within_the_window():
    result = run([*purchases(0, 10, 20, 30), survey(31, csat=5), clock(365)])
    assert result.moves("loyalty_type") == [
        ("spurious", "loyalty_type.high_repeat_without_positive_attitude", 30),
        ("true", "loyalty_type.positive_attitude_high_repeat", 31),
        ("latent", "loyalty_type.positive_attitude_low_repeat", 365),
    ]


# --- value and the relationship level (docs/domain.md sections 4 and 5) ---------------


def expected_clv(yearly: int, activity: str = "active", policy: Policy = POLICY) -> int:
    """The documented CLV: the yearly value over the horizon, weighted by survival, discounted."""
    p = policy.value
    survival = p.yearly_survival[activity]
    total = sum(yearly * (survival / (1 + p.discount_rate)) ** year for year in range(1, p.horizon_years + 1))
    return round(total) - p.acquisition_cost_minor


VALUE_CASES = {
    "EUR revenue": ([purchase(0, "o1", 10_000)], 10_000, "small", "basic"),
    "USD converted at 0.92": ([purchase(0, "o1", 10_000, "USD")], 9_200, "small", "basic"),
    "SEK converted at 0.087": ([purchase(0, "o1", 100_000, "SEK")], 8_700, "small", "basic"),
    "an unknown currency counts no value": ([purchase(0, "o1", 1_000_000, "JPY")], 0, "small", "basic"),
    "margin counts instead of revenue": ([purchase(0, "o1", 10_000, margin=2_000)], 2_000, "small", "basic"),
    "margin in a foreign currency is converted": (
        [purchase(0, "o1", 10_000, "GBP", margin=5_000)], 5_850, "small", "reactive"),
    "a 30% margin is high: small, reactive": ([purchase(0, "o1", 10_000, margin=3_000)], 3_000, "small", "reactive"),
    "normal band, low margin: reactive": ([purchase(0, "o1", 50_000)], 50_000, "normal", "reactive"),
    "normal band, high margin: accountable": (
        [purchase(0, "o1", 60_000, margin=20_000)], 20_000, "normal", "accountable"),
    "key band, no margin known: proactive": ([purchase(0, "o1", 100_000)], 100_000, "key", "proactive"),
    "key band, high margin: partnership": (
        [purchase(0, "o1", 300_000, margin=100_000)], 100_000, "key", "partnership"),
    "several purchases and currencies add up": (
        [purchase(0, "o1", 10_000), purchase(1, "o2", 10_000, "USD"), purchase(2, "o3", 5_000, "XTS")],
        19_200, "normal", "reactive"),
}


@pytest.mark.parametrize(("history", "value", "band", "level"), VALUE_CASES.values(), ids=VALUE_CASES.keys())
def test_value(history, value, band, level):
    state = run(history).state
    assert state.historical_value_minor == value
    assert state.current_value_minor == value
    assert state.clv_minor == pytest.approx(expected_clv(value), abs=1)  # float rounding aside
    assert (state.value_band, state.relationship_level) == (band, level)


def test_an_unknown_currency_is_still_a_purchase():
    state = run([purchase(0, "o1", 1_000_000, "JPY")]).state
    assert (state.stage, state.purchases, state.unpriced_purchases, state.points) == ("first_time", 1, 1, 0)


def test_current_value_is_the_trailing_year_historical_value_stays():
    result = run([purchase(0, "o1", 10_000), purchase(200, "o2", 20_000), clock(365), clock(565)])
    state = result.state
    assert state.historical_value_minor == 30_000
    assert state.current_value_minor == 0
    assert state.clv_minor == 0  # churned, nothing in the window


def test_the_value_band_follows_activity():
    """CLV weighs the yearly value by the chance the customer still buys: decline lowers it."""
    result = run([purchase(0, "o1", 50_000), *clocks(60, 120)])
    assert result.moves("value_band") == [("normal", "value_band.normal_clv", 0), ("small", "value_band.small_clv", 120)]
    assert result.state.clv_minor == pytest.approx(expected_clv(50_000, "half_asleep"), abs=1)


def test_acquisition_cost_is_subtracted_from_clv():
    costly = parse_policy('version = "costly"\n[value]\nacquisition_cost_minor = 300000\n')
    state = run([purchase(0, "o1", 100_000)], costly).state
    assert state.clv_minor == pytest.approx(expected_clv(100_000, policy=costly), abs=1)
    assert state.clv_minor < 0
    assert state.value_band == "small"


def test_the_value_band_boundaries_are_inclusive():
    clv = run([purchase(0, "o1", 20_000)]).state.clv_minor
    for threshold, band in ((clv, "normal"), (clv + 1, "small")):
        policy = parse_policy(f'version = "v"\n[value]\nnormal_band_min_minor = {threshold}\n')
        assert run([purchase(0, "o1", 20_000)], policy).state.value_band == band
    for threshold, band in ((clv, "key"), (clv + 1, "normal")):
        policy = parse_policy(f'version = "v"\n[value]\nnormal_band_min_minor = 1\nkey_band_min_minor = {threshold}\n')
        assert run([purchase(0, "o1", 20_000)], policy).state.value_band == band


# --- late events ----------------------------------------------------------------------


def test_a_late_purchase_counts_but_does_not_move_time_back():
    late = purchase(50, "o-late", 1_000)
    result = run([purchase(0, "o1", 1_000), clock(100), late])
    state = result.state
    assert state.now == epoch_seconds(at(100))
    assert state.purchases == 2 and state.stage == "repeat"
    assert state.last_event_at == epoch_seconds(at(50))  # clocks are not the customer's events
    # Decided as of day 100: the last purchase was on day 50, so active again (no win-back).
    assert result.causes[-1][1] and all(e.caused_by == [late.event_id] for e in result.causes[-1][1])
    assert all(e.occurred_at == late.occurred_at for e in result.causes[-1][1])
    assert [(e.dimension, e.from_value, e.to_value, e.rule) for e in result.causes[-1][1]] == [
        stage("first_time", "repeat", "repeat_purchases"),
        ("activity", "drowsy", "active", "activity.active"),
    ]


def test_a_late_event_after_a_later_event_of_the_customer():
    result = run([purchase(0, "o1"), visit(100), purchase(50, "o2")])
    assert result.state.now == epoch_seconds(at(100))
    assert result.state.last_event_at == epoch_seconds(at(100))
    assert result.state.purchases == 2
    assert result.state.purchase_times == [epoch_seconds(at(0)), epoch_seconds(at(50))]


def test_a_late_survey_does_not_replace_a_newer_answer():
    state = run([purchase(0, "o1"), survey(10, nps=10), survey(5, nps=0)]).state
    assert (state.latest_nps, state.attitude) == (10, "positive")


def test_a_late_purchase_counts_in_the_windows_that_contain_it():
    # Three purchases, then a late fourth inside the year: loyal.
    result = run([*purchases(100, 200, 300), clock(310), purchase(150, "o-late", 1_000)])
    assert result.state.stage == "loyal"
    assert result.state.current_value_minor == 4_000


def test_a_late_purchase_outside_the_value_window_adds_history_only():
    result = run([purchase(500, "o1", 10_000), purchase(10, "o-old", 5_000)])
    state = result.state
    assert state.historical_value_minor == 15_000
    assert state.current_value_minor == 10_000


def test_a_late_clock_changes_nothing():
    result = run([purchase(0, "o1"), clock(200), clock(100)])
    assert result.causes[-1][1] == []
    assert result.state.now == epoch_seconds(at(200))


# --- the lifecycle events themselves --------------------------------------------------

FULL_HISTORY = [
    profile(0), contact(0.5, "outbound"), visit(1), purchase(2, "o1", 20_000, "USD", margin=8_000),
    purchase(10, "o2", 30_000), complaint(12), resolved(13), purchase(20, "o3", 40_000), survey(21, nps=10, csat=5),
    purchase(30, "o4", 50_000), joined(31), referral(40), purchase(41, "o5", 20_000), refund(42, "o5", 20_000),
    *clocks(60, 100, 200, 400), purchase(401, "o6", 1_000), left(402), erased(403), clock(900),
]


def test_lifecycle_event_fields():
    result = run(FULL_HISTORY)
    events = result.events
    assert len(events) >= 15
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    for cause, caused in result.causes:
        for event in caused:
            assert event.customer_id == CUSTOMER
            assert event.policy_version == VERSION
            if event.caused_by:
                assert event.caused_by == [cause.event_id]
                assert event.occurred_at == cause.occurred_at
            else:  # time alone, at its own moment, up to where the record revealing it took time
                assert event.occurred_at <= cause.occurred_at
            assert type(event) is EVENT_FOR_DIMENSION[event.dimension]
            assert event.from_value != event.to_value
            assert event.rule.startswith(f"{event.dimension}.")
    # Each change starts where the previous one of its dimension ended.
    where = dict(INITIAL)
    for event in events:
        assert event.from_value == where[event.dimension]
        where[event.dimension] = event.to_value
    assert where == result.dimensions()
    assert set(e.dimension for e in events) == set(INITIAL)


def test_the_same_history_gives_the_same_events():
    first, second = run(FULL_HISTORY), run(FULL_HISTORY)
    assert [encode_event(e) for e in first.events] == [encode_event(e) for e in second.events]
    assert encode_state(first.state) == encode_state(second.state)


def test_event_ids_differ_between_customers():
    other = run([*FULL_HISTORY], customer="c-bob")
    ids = {e.event_id for e in run(FULL_HISTORY).events}
    assert not ids & {e.event_id for e in other.events}


def test_a_stored_state_resumes_to_the_same_events():
    """A state persisted and decoded mid-way (as the processor does) decides the same."""
    engine = LifecycleEngine(POLICY)
    state = CustomerState(customer_id=CUSTOMER)
    events = []
    for index, event in enumerate(FULL_HISTORY):
        if index % 3 == 0:
            state = decode_state(encode_state(state))
        events += engine.on_clock(state, event) if type(event) is Clock else engine.on_event(state, event)
    assert [encode_event(e) for e in events] == [encode_event(e) for e in run(FULL_HISTORY).events]


def test_lifecycle_events_round_trip_the_wire_contract():
    from schemas import decode_lifecycle_event

    for event in run(FULL_HISTORY).events:
        assert decode_lifecycle_event(encode_event(event)) == event
        assert msgspec.json.decode(encode_event(event))["type"] == f"{event.dimension}_changed"


# --- duplicates (two producers racing to publish the same event) -----------------------


def test_a_repeated_event_is_ignored_and_counted():
    first, second = purchase(0, "o1"), purchase(3, "o2")
    result = run([first, first, second, first])
    assert result.state.purchases == 2
    assert result.state.historical_value_minor == 20_000
    assert result.state.duplicates_ignored == 2
    assert [caused for event, caused in result.causes[1:2]] == [[]]


def test_only_the_latest_event_ids_are_remembered():
    first = purchase(0, "o1")
    later = [visit(day) for day in range(1, 10)]
    result = run([first, *later, first])
    # Out of reach of the guard: the repeat counts (the publish index is the first defence).
    assert result.state.duplicates_ignored == 0
    assert result.state.recent_event_ids[-1] == first.event_id.int & ((1 << 64) - 1)
