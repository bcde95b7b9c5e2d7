"""A synthetic customer population: a seeded, pure generator of realistic customer events.

Owns the personas (who buys how often, who complains, who leaves, who comes back) and
their rendering as wire events (`schemas.events`) in event-time order, for
`lifecycle demo` and the benchmarks. Nothing here reads the clock, the disk or global
random state: the same `PopulationSpec` gives byte-identical output on any machine.

Two passes keep memory small at millions of events: first every customer's events are
planned, each packed in one int in a per-day bucket, carrying only what other events
depend on (order amounts, complaint numbers); then the days are sorted and emitted in
order, drawing the details nothing else depends on (channels, names, event ids) only as
each event is built. Draws use only IEEE arithmetic on the Mersenne Twister's output (no
`gauss`, `exp` or `log` per draw, whose last bit may differ between C libraries).
"""

from __future__ import annotations

import math
import random
import uuid
from array import array
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from statistics import NormalDist
from typing import NamedTuple

from schemas import (
    AnyEvent,
    Clock,
    ComplaintFiled,
    ComplaintResolved,
    ConsentChanged,
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

DAY_S = 86_400
# Customers act in the daytime, so an event can be placed minutes before or after
# another on the same day without leaving the day.
OPEN_S, CLOSE_S = 8 * 3600, 22 * 3600
ERASE_S = 23 * 3600 + 1800  # after anything the customer did that day

# Planned event kinds, indexes into `_Renderer.kinds`; numbered causes first, as they
# order a customer's events within one second.
(PROFILE, CONSENT, VISIT, CONTACT, PURCHASE, REFUND, SURVEY,
 COMPLAINT, RESOLVED, JOINED, LEFT, REFERRAL, ERASED) = range(13)
PURPOSES = ("marketing", "profiling")
_UNKNOWN = uuid.SafeUUID.unknown  # an enum lookup per event was measurable
_NOT_VERSION = ~(0xF000 << 64 | 0xC000 << 48)  # clears a UUID's version and variant bits
_VERSION_4 = 0x4000 << 64 | 0x8000 << 48  # version 4, RFC 4122 variant

CURRENCIES = ("EUR", "GBP", "USD", "CHF", "SEK")
# Price level per currency, so that a basket costs about the same whatever it is paid in.
CURRENCY_SCALE = (1.0, 0.85, 1.1, 0.95, 11.0)
FIRST_NAMES = ("Anna", "Ben", "Chen", "Dara", "Elif", "Femi", "Greta", "Hiro", "Ines",
               "Jonas", "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Rosa", "Sven",
               "Tariq", "Uma", "Victor", "Wei", "Yara", "Zoe")
LAST_NAMES = ("Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ivanova",
              "Jensen", "Kowalski", "Li", "Moreau", "Novak", "Okafor", "Petrov", "Rossi",
              "Schmidt", "Tanaka", "Vargas", "Weber", "Yilmaz", "Zhang")
CITIES = ("Amsterdam", "Barcelona", "Berlin", "Brussels", "Copenhagen", "Dublin", "Hamburg",
          "Lisbon", "Lyon", "Madrid", "Milan", "Munich", "Paris", "Prague", "Vienna")
CONTACT_IN = (("phone", "chat", "email", "social", "store", "web"),
              ("order status", "product question", "returns", "billing", "opening hours"))
CONTACT_OUT = (("email", "email", "phone", "social", "field"),
               ("newsletter", "promotion", "new collection", "survey invitation"))
SALES_CHANNELS = ("store", "store", "web", "web", "app", "phone")
ITEMS = (1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 6)
PLACES = ("store", "web", "web", "app")
COMPLAINT_CATEGORIES = ("product", "service", "delivery", "billing", "staff")
SEVERITIES = ("low", "low", "medium", "medium", "high", "critical")
RESOLUTIONS = ("refund", "replacement", "apology", "voucher", "explanation")


@dataclass(frozen=True)
class PopulationSpec:
    """How many customers, over which days, from which seed."""

    customers: int = 10_000
    seed: int = 7
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    days: int = 365
    clock_every_days: int = 1  # a `clock` at start and every n days on, end included; 0: none

    def __post_init__(self) -> None:
        if self.customers < 0 or self.days < 1 or self.clock_every_days < 0:
            msg = "customers >= 0, days >= 1 and clock_every_days >= 0 are required"
            raise ValueError(msg)
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")


class Persona(NamedTuple):
    """A kind of customer: how it buys, feels and behaves."""

    name: str
    weight: float  # share of the population
    buys: str  # purchase schedule, see `_Planner.purchase_days`
    join_by: float  # latest first appearance, as a share of the period: rhythms need time
    mood: float  # mean NPS of its survey answers
    complaint_p: float
    member_p: float
    referrals: int  # most referrals made


PERSONAS = (
    Persona("cold_prospect", 0.12, "none", 1.0, 5.0, 0.0, 0.0, 0),
    Persona("warm_prospect", 0.10, "intent", 1.0, 6.0, 0.0, 0.0, 0),
    Persona("one_off", 0.17, "once", 0.9, 7.0, 0.08, 0.0, 0),
    Persona("repeat", 0.14, "few", 0.7, 7.5, 0.10, 0.0, 0),
    Persona("loyal", 0.12, "rhythm", 0.5, 8.0, 0.06, 0.0, 0),
    Persona("member", 0.08, "rhythm", 0.5, 8.3, 0.06, 1.0, 0),
    Persona("advocate", 0.05, "rhythm", 0.5, 9.5, 0.02, 0.6, 3),
    Persona("decliner", 0.15, "decline", 0.4, 4.5, 0.35, 0.1, 0),
    Persona("won_back", 0.07, "winback", 0.2, 6.5, 0.12, 0.0, 0),
)
ERASE_P = 0.005


def _quantiles(f) -> tuple[float, ...]:
    """f of 512 standard normal quantiles, rounded so that any C library computes the same
    table; a uniform pick from it is a normal draw, and costs less than `random.gauss`."""
    return tuple(round(f(NormalDist().inv_cdf((i + 0.5) / 512)), 4) for i in range(512))


NORMAL = _quantiles(float)
SPEND_LEVELS = _quantiles(lambda z: math.exp(0.5 * z))  # customers' spend, lognormal
BASKETS = _quantiles(lambda z: math.exp(0.6 * z))  # each basket around its customer's level


class _Rng(random.Random):
    """Integer draws from one float: `random.Random`'s exact ones cost ten times more,
    and their bias of 2**-53 is of no matter to synthetic data."""

    def randrange(self, start: int, stop: int) -> int:  # type: ignore[override]
        return start + int(self.random() * (stop - start))

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq):  # type: ignore[override]
        return seq[int(self.random() * len(seq))]


def generate(spec: PopulationSpec) -> Iterator[bytes]:
    """JSON lines (bytes, no trailing newline) of valid events, ordered by occurred_at."""
    return map(encode_event, generate_events(spec))


def generate_events(spec: PopulationSpec) -> Iterator[AnyEvent]:
    """The population's events in occurred_at order; ties keep a deterministic order."""
    rng = _Rng(spec.seed)
    emit_seed = rng.getrandbits(64)
    buckets, currencies = _plan(spec, rng)
    renderer = _Renderer(spec, emit_seed, currencies)
    start = spec.start.astimezone(UTC)
    every = spec.clock_every_days
    for day in range(spec.days + 1):
        midnight = start + timedelta(days=day)
        if every and day % every == 0:
            yield renderer.clock(midnight)
        if day < spec.days:
            yield from renderer.day(midnight, buckets[day])
            buckets[day] = []  # emitted: free it while the later days are emitted


def _plan(spec: PopulationSpec, rng: random.Random) -> tuple[list[list[int]], bytearray]:
    """Every customer's events packed in ints by day (see `_Planner.add`): ints keep
    10M events under 1 GB and out of the garbage collector's way. And each customer's
    currency."""
    personas, joins, currencies = _cast(spec, rng)
    planner = _Planner(rng, spec.days, joins, currencies)
    for cidx in range(spec.customers):
        planner.plan(cidx, PERSONAS[personas[cidx]])
    return planner.buckets, currencies


def _cast(spec: PopulationSpec, rng: random.Random) -> tuple[bytearray, array, bytearray]:
    """Each customer's persona, first day and currency, before any event is planned:
    referrals need to know when the friends they bring will turn up."""
    cum = list(accumulate(p.weight for p in PERSONAS))
    personas, joins, currencies = bytearray(), array("i"), bytearray()
    for _ in range(spec.customers):
        p = bisect(cum, rng.random() * cum[-1])
        personas.append(p)
        joins.append(int(rng.random() * spec.days * PERSONAS[p].join_by))
        currencies.append(0 if rng.random() < 0.92 else rng.randrange(1, len(CURRENCIES)))
    return personas, joins, currencies


class _Planner:
    """Plans one customer at a time into the day buckets; a consequence is always placed
    after its cause, so cutting at the end of the period never orphans one."""

    def __init__(self, rng: random.Random, days: int, joins: array, currencies: bytearray):
        self.rng, self.random, self.days = rng, rng.random, days
        self.joins, self.currencies, self.n = joins, currencies, len(joins)
        self.buckets: list[list[int]] = [[] for _ in range(days)]

    def plan(self, cidx: int, persona: Persona) -> None:
        r = self.rng
        self.cidx, self.persona, self.join = cidx, persona, self.joins[cidx]
        self.join_sec = r.randrange(OPEN_S, CLOSE_S - 7200)
        # A few ask to be forgotten: decided first, as nothing of theirs may follow.
        erased = self.join + r.randint(1, 120) if r.random() < ERASE_P else self.days
        self.end = min(self.days, erased + 1)
        self.add(erased, ERASED, sec=ERASE_S)
        self.appear()
        buys = self.purchase_days(persona.buys)
        orders = self.purchases(buys)
        self.contacts(bool(buys))
        self.refunds(orders)
        self.surveys(orders)
        self.complaints(orders)
        self.membership(buys)
        self.referrals(buys)

    def add(self, day: int, kind: int, a: int = 0, b: int = 0, sec: int | None = None) -> None:
        """Packs (second, customer, kind, a < 2**16, b < 2**32): sorting the ints of a day
        orders its events by time, then customer, then kind."""
        if day < self.end:
            if sec is None:  # in the daytime; on the first day, after the customer appeared
                first = self.first_sec(day)
                sec = first + int(self.random() * (CLOSE_S - first))
            key = sec * self.n + self.cidx
            self.buckets[day].append(key << 52 | kind << 48 | a << 32 | b)

    def first_sec(self, day: int) -> int:
        return self.join_sec + 60 if day == self.join else OPEN_S

    def some_day(self) -> int:
        return self.rng.randrange(self.join, self.days)

    def appear(self) -> None:
        """Sign-up: the profile, usually a marketing opt-in; later a few move or opt out."""
        r, day, sec = self.rng, self.join, self.join_sec
        self.add(day, PROFILE, 1, sec=sec)
        if r.random() < 0.7:
            self.add(day, CONSENT, 0, 1, sec + 1)
        if r.random() < 0.3:
            self.add(day, CONSENT, 1, r.random() < 0.5, sec + 2)
        if r.random() < 0.06:
            self.add(self.some_day() + 1, PROFILE, 0)
        if r.random() < 0.06:
            self.add(self.some_day() + 1, CONSENT, 0, 0)

    def purchase_days(self, buys: str) -> list[int]:
        r = self.rng
        first = self.join + int(15 * r.random() * r.random())  # days from sign-up to order
        if buys in ("none", "intent"):
            days = []
        elif buys == "once":
            days = [first]
        elif buys == "few":
            gaps = [r.randint(14, 120) for _ in range(r.randint(1, 2))]
            days = list(accumulate([first, *gaps]))
        else:
            days = self.rhythmic(buys, first, r.uniform(7, 30))
        return [day for day in days if day < self.end]

    def rhythmic(self, buys: str, first: int, rhythm: float) -> list[int]:
        """Weekly to monthly buyers; decliners stop partway, the won-back return after a gap."""
        r, end = self.rng, self.days
        if buys == "decline":
            stop = first + max(2 * rhythm, (end - first) * r.uniform(0.15, 0.6))
            return self.every(first, stop, rhythm)
        if buys == "winback":
            stop = first + max(2 * rhythm, end * r.uniform(0.08, 0.2))
            back = int(stop + end * r.uniform(0.33, 0.45))
            self.add(back - r.randint(1, 5), CONTACT, 0)  # the offer that wakes them
            return self.every(first, stop, rhythm) + self.every(back, end, rhythm)
        return self.every(first, end, rhythm)

    def every(self, day: float, end: float, rhythm: float) -> list[int]:
        days, rnd = [], self.random
        while day < end:
            days.append(int(day))
            day += rhythm * (0.6 + 0.8 * rnd())
        return days

    def purchases(self, buys: list[int]) -> list[tuple[int, int, int]]:
        """Lognormal baskets around the customer's own spend level; a visit before some."""
        rnd = self.random
        scale = CURRENCY_SCALE[self.currencies[self.cidx]]
        level = 3500 * scale * self.rng.choice(SPEND_LEVELS)  # minor units
        orders = []
        for n, day in enumerate(buys, 1):
            first = self.first_sec(day)
            sec = first + int(rnd() * (CLOSE_S - first))
            amount = min(2**32 - 1, max(50, int(level * BASKETS[int(rnd() * len(BASKETS))])))
            if rnd() < 0.3:
                self.add(day, VISIT, sec=max(first, sec - 300 - int(rnd() * 3300)))
            self.add(day, PURCHASE, n, amount, sec)
            orders.append((day, n, amount))
        return orders

    def contacts(self, bought: bool) -> None:
        """Outbound campaigns reach everyone; intent (inbound contact, visit) some."""
        r = self.rng
        for _ in range(r.randint(0, 2) if bought else r.randint(1, 4)):
            self.add(self.some_day(), CONTACT, 0)
        intents = r.randint(1, 3) if self.persona.buys == "intent" else int(r.random() < 0.2)
        for _ in range(intents):
            if r.random() < 0.5:
                self.add(self.some_day(), CONTACT, 1)
            else:
                self.add(self.some_day(), VISIT)

    def refunds(self, orders: list[tuple[int, int, int]]) -> None:
        r = self.rng
        if self.persona.buys == "once" and orders and r.random() < 0.15:
            day, n, amount = orders[0]  # returned it all: no customer after all
            self.add(day + r.randint(1, 20), REFUND, n, amount)
            return
        for day, n, amount in orders:
            if r.random() < 0.04:
                part = amount if r.random() < 0.6 else int(amount * r.uniform(0.2, 0.8))
                self.add(day + r.randint(1, 30), REFUND, n, part)

    def surveys(self, orders: list[tuple[int, int, int]]) -> None:
        """Post-purchase surveys; advocates always answer one, as promoters."""
        r, p = self.rng, self.persona
        for i, (day, _, _) in enumerate(orders):
            if p.referrals and i == 0:
                nps, form = r.randint(9, 10), r.random() * 0.8
            elif r.random() < 0.08:
                nps, form = min(10, max(0, round(p.mood + 1.5 * r.choice(NORMAL)))), r.random()
            else:
                continue
            csat = min(5, max(1, round(1 + nps * 0.4 + 0.5 * r.choice(NORMAL))))
            # Packed one up, so that 0 can stand for a question left unanswered.
            answer = (nps + 1 if form < 0.8 else 0, csat if form > 0.3 else 0)
            self.add(day + r.randint(1, 7), SURVEY, *answer)

    def complaints(self, orders: list[tuple[int, int, int]]) -> None:
        """Most complaints get resolved; decliners complain about the order before they
        stop, and service recovery mostly fails them."""
        r, p = self.rng, self.persona
        if not orders or r.random() >= p.complaint_p:
            return
        declining = p.buys == "decline"
        for k in range(1, 2 + (r.random() < 0.15)):
            day = (orders[-1] if declining else r.choice(orders))[0] + r.randint(1, 10)
            self.add(day, COMPLAINT, k)
            if r.random() < 0.85:
                satisfied = r.random() < (0.3 if declining else 0.7)
                self.add(day + r.randint(1, 21), RESOLVED, k, satisfied)

    def membership(self, buys: list[int]) -> None:
        r, p = self.rng, self.persona
        if len(buys) < 2 or r.random() >= p.member_p:
            return
        joined = buys[min(len(buys) - 1, r.randint(1, 3))] + r.randint(1, 3)
        self.add(joined, JOINED)
        if r.random() < (0.5 if p.buys == "decline" else 0.15):
            self.add(joined + r.randint(30, 200), LEFT)

    def referrals(self, buys: list[int]) -> None:
        """Advocates bring friends, usually just before the friend first turns up."""
        r = self.rng
        if not buys or not self.persona.referrals or len(self.joins) < 2:
            return
        for _ in range(r.randint(1, self.persona.referrals)):
            friend = r.randrange(0, len(self.joins))
            if friend == self.cidx:
                continue
            arrives = self.joins[friend]
            late = arrives > buys[0] + 7
            day = arrives - r.randint(0, 7) if late else buys[0] + r.randint(1, 60)
            self.add(day, REFERRAL, 0, friend)


class _Renderer:
    """Turns packed plans into events, drawing the details nothing else depends on."""

    def __init__(self, spec: PopulationSpec, seed: int, currencies: bytearray):
        self.rng, self.currencies = _Rng(seed), currencies
        self.random = self.rng.random  # the hot kinds pick by hand: `choice` is a Python call
        self.n = max(1, spec.customers)
        cid_format = f"c%0{max(7, len(str(spec.customers - 1)))}d"
        self.customer_ids = [cid_format % cidx for cidx in range(spec.customers)]
        self.bits = self.rng.getrandbits
        # A timedelta per second of the day: building one per event was a fifth of the time.
        self.deltas = [timedelta(seconds=s) for s in range(DAY_S)]
        self.kinds = (self.profile, self.consent, self.visit, self.contact, self.purchase,
                      self.refund, self.survey, self.complaint, self.resolved, self.joined,
                      self.left, self.referral, self.erased)

    def event_id(self) -> uuid.UUID:
        """A version-4 UUID from the seeded generator. Built without `UUID.__init__`,
        whose argument checks cost more than the rest of the event, as that does itself."""
        event_id = object.__new__(uuid.UUID)
        object.__setattr__(event_id, "int", self.bits(128) & _NOT_VERSION | _VERSION_4)
        object.__setattr__(event_id, "is_safe", _UNKNOWN)
        return event_id

    def clock(self, midnight: datetime) -> Clock:
        return Clock(event_id=self.event_id(), occurred_at=midnight, source="clock")

    def day(self, midnight: datetime, bucket: list[int]) -> Iterator[AnyEvent]:
        bucket.sort()
        n, deltas, kinds, customer_ids = self.n, self.deltas, self.kinds, self.customer_ids
        event_id = self.event_id
        for packed in bucket:
            sec, cidx = divmod(packed >> 52, n)
            render = kinds[packed >> 48 & 15]
            yield render(event_id(), midnight + deltas[sec], customer_ids[cidx], cidx,
                         packed >> 32 & 0xFFFF, packed & 0xFFFFFFFF)

    def contact(self, eid, at, cid, cidx, inbound, _):
        rnd = self.random
        channels, topics = CONTACT_IN if inbound else CONTACT_OUT
        return Contact(event_id=eid, occurred_at=at, source="crm", customer_id=cid,
                       channel=channels[int(rnd() * len(channels))],
                       direction="inbound" if inbound else "outbound",
                       topic=topics[int(rnd() * len(topics))])

    def purchase(self, eid, at, cid, cidx, n, amount):
        rnd = self.random
        margin = int(amount * (0.1 + 0.35 * rnd())) if rnd() < 0.4 else None
        return Purchase(event_id=eid, occurred_at=at, source="pos", customer_id=cid,
                        order_id=f"o{cid[1:]}-{n}", amount_minor=amount,
                        currency=CURRENCIES[self.currencies[cidx]], margin_minor=margin,
                        channel=SALES_CHANNELS[int(rnd() * len(SALES_CHANNELS))],
                        items=ITEMS[int(rnd() * len(ITEMS))])

    def refund(self, eid, at, cid, cidx, n, amount):
        return Refund(event_id=eid, occurred_at=at, source="pos", customer_id=cid,
                      order_id=f"o{cid[1:]}-{n}", amount_minor=amount,
                      currency=CURRENCIES[self.currencies[cidx]])

    def complaint(self, eid, at, cid, cidx, k, _):
        r = self.rng
        return ComplaintFiled(event_id=eid, occurred_at=at, source="helpdesk", customer_id=cid,
                              complaint_id=f"k{cid[1:]}-{k}",
                              category=r.choice(COMPLAINT_CATEGORIES),
                              severity=r.choice(SEVERITIES))

    def resolved(self, eid, at, cid, cidx, k, satisfied):
        return ComplaintResolved(event_id=eid, occurred_at=at, source="helpdesk",
                                 customer_id=cid, complaint_id=f"k{cid[1:]}-{k}",
                                 satisfied=bool(satisfied),
                                 resolution=self.rng.choice(RESOLUTIONS))

    def visit(self, eid, at, cid, cidx, _, __):
        rnd = self.random
        return Visit(event_id=eid, occurred_at=at, source="tracking", customer_id=cid,
                     place=PLACES[int(rnd() * len(PLACES))],
                     duration_s=int(rnd() * rnd() * 1800))

    def survey(self, eid, at, cid, cidx, nps_plus_one, csat):
        return SurveyAnswered(event_id=eid, occurred_at=at, source="survey", customer_id=cid,
                              nps=nps_plus_one - 1 if nps_plus_one else None,
                              csat=csat or None)

    def joined(self, eid, at, cid, cidx, _, __):
        return MembershipJoined(event_id=eid, occurred_at=at, source="loyalty", customer_id=cid,
                                programme="club", member_id=f"M{cid[1:]}")

    def left(self, eid, at, cid, cidx, _, __):
        return MembershipLeft(event_id=eid, occurred_at=at, source="loyalty", customer_id=cid,
                              programme="club")

    def referral(self, eid, at, cid, cidx, _, friend):
        return ReferralMade(event_id=eid, occurred_at=at, source="loyalty", customer_id=cid,
                            referred_customer_id=self.customer_ids[friend])

    def profile(self, eid, at, cid, cidx, first, _):
        """The sign-up profile; a later update is a move: new city and phone."""
        r = self.rng
        phone, city = f"+49 30 {r.randrange(0, 10**7):07d}", r.choice(CITIES)
        if not first:
            return ProfileUpdated(event_id=eid, occurred_at=at, source="crm", customer_id=cid,
                                  phone=phone, city=city)
        name = (r.choice(FIRST_NAMES), r.choice(LAST_NAMES))
        born = f"{r.randint(1950, 2006)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        return ProfileUpdated(event_id=eid, occurred_at=at, source="crm", customer_id=cid,
                              name=" ".join(name), email=".".join(name).lower() + "@example.com",
                              phone=phone, city=city, birth_date=born)

    def consent(self, eid, at, cid, cidx, purpose, granted):
        return ConsentChanged(event_id=eid, occurred_at=at, source="crm", customer_id=cid,
                              purpose=PURPOSES[purpose], granted=bool(granted))

    def erased(self, eid, at, cid, cidx, _, __):
        return CustomerErased(event_id=eid, occurred_at=at, source="privacy", customer_id=cid)
