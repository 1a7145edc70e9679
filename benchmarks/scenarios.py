"""A labelled suite of brand-mention streams, and how alerts on it are scored.

The detector is tuned and judged on these scenarios, so they are generated
here in code (seeded: a seed gives the same suite every time) rather than
taken from the data the defaults were chosen on. Each scenario is a stream of
posts with true sentiment labels and, where it must alert, its incidents:

* `onset`: when the trouble starts in the stream;
* `due`: the latest alert that still counts as caught (later is a miss);
* `end`: the end of the span that is one incident, so a second page inside it
  is a duplicate, not a new detection.

Scoring (`score`): a firing is a new alert id with status "firing" (updates
and returns within the cool-down keep their id and are not pages). The first
firing inside an incident's span is its detection, on time if it comes by
`due`; any later firing in the span is a duplicate; a firing outside every
span is a false alarm. Precision is detections over detections plus false
alarms (duplicates are counted on their own line); recall is incidents
detected on time over incidents. Firings before `scored_from` (the detector's
first hours with no history) are reported apart and not scored.

The texts come from the demo's phrase banks plus enthusiastic slang ("is
sick", "killing it", "stupid good") that a sentiment model trained on tweets
tends to read as negative; `model_label` simulates that error profile.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from listener.demo import texts

__all__ = [
    "SCENARIOS",
    "Firing",
    "Incident",
    "Item",
    "Scenario",
    "Score",
    "build_suite",
    "describe",
    "model_label",
    "score",
]

Tone = Literal["negative", "neutral", "positive"]
HOUR = 3600.0
DAY = 86400.0
# A Monday, so weekdays and the weekend fall where the calendar puts them.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
SLANG_FLIP = 0.20  # share of enthusiastic slang the simulated model calls negative
OTHER_FLIP = 0.03  # share of everything else it gets wrong

SITES = (
    "bsky.app",
    "mastodon.social",
    "reddit.com",
    "x.com",
    "news.ycombinator.com",
    "metrowire.example",
    "reviews.example",
    "forum.users.example",
)
PRODUCTS = ("router", "app", "mesh kit", "Nova box", "fiber plan", "speed upgrade", "new update")
SLANG = (
    "ngl the new {b} {p} is sick",
    "{b} is killing it with the {p}",
    "{b} {p} is stupid good, not even joking",
    "the {p} from {b} goes hard",
    "{b} {p} slaps, zero lag all night",
    "bro the {b} {p} is insane, in a good way",
    "{b} {p} is lowkey fire",
    "{b} absolutely crushed it with this {p}",
    "{b} {p} is wicked fast, obsessed",
    "this {b} {p} is disgustingly good",
    "{b} out here killing the competition with that {p}",
    "the {b} {p} is so sick I can't even",
)
# Asides that change the wording, not the tone, so that people do not all post one string.
OPENERS = ("", "", "", "PSA: ", "Update: ", "ok so ", "Quick one: ", "Day 3 of this: ", "fyi ", "So... ")
TAILS: dict[str, tuple[str, ...]] = {
    "positive": ("", "", " 🙂", " 👍", " #happycustomer", " Cheers.", " (not sponsored)", " 10/10"),
    "neutral": ("", "", " Thanks!", " Anyone?", " #help", " (asking for a friend)", " 🤔", " TIA"),
    "negative": ("", "", " Ugh.", " 😤", " #fail", " Not impressed.", " Fix it.", " Again."),
}
SLANG_TAILS = ("", "", " 🔥", " !!", " 10/10", " 🤯", " lol", " no cap")
LAUNCH = {
    "positive": (
        "Preordered the {b} {p} the minute the launch stream ended. Looks great!",
        "The {b} launch event was really well done, excited for the {p}.",
        "Got my {b} {p} today, setup took two minutes. Love it.",
        "{b} finally shipped the {p} and it's as good as promised. Great job.",
    ),
    "neutral": (
        "Does the {b} {p} work with older routers?",
        "{b} announced the {p} today, shipping next week in {a}.",
        "Live thread: {b} launch event, {p} pricing and availability.",
        "Anyone compared the {b} {p} with the old model yet?",
    ),
    "negative": (
        "{b} {p} preorder page keeps crashing. Annoying.",
        "Overpriced, the {b} {p} costs double the old one. Disappointed.",
    ),
}
BILLING = (
    "{b} charged me twice again this month",
    "{b} raised my bill by 30% with no notice",
    "surprise new fees on my {b} bill",
    "{b} billing support says the extra charge is 'correct'",
    "another customer here double charged by {b}",
    "{b} took my payment twice and the refund form is broken",
)
MORE_NEGATIVE = (
    "{b} support chat disconnected me three times today. Useless.",
    "Slow speeds from {b} in {a} all evening. Not what I pay for.",
    "{b} app logged me out again and reset my settings. Annoying.",
)


@dataclass(frozen=True)
class Item:
    """One post: when it was published and reaches the product, what it says, its true tone."""

    id: str
    published: float
    text: str
    author: str
    site: str
    label: Tone
    slang: bool = False
    incident: str | None = None
    delivered: float | None = None  # set for late (backfilled) posts; else publication + delay


@dataclass(frozen=True)
class Incident:
    id: str
    onset: float
    due: float
    end: float


@dataclass(frozen=True)
class Scenario:
    name: str
    brand: str
    description: str
    start: float
    end: float
    scored_from: float
    items: tuple[Item, ...]
    incidents: tuple[Incident, ...] = ()

    @property
    def must_alert(self) -> bool:
        return bool(self.incidents)


@dataclass(frozen=True)
class Firing:
    """A page: a new alert id's first "firing", with the stream time it was created."""

    alert_id: str
    created: float
    window_start: float
    window_end: float
    note: str = ""


@dataclass
class Score:
    incidents: int = 0
    detected: int = 0  # incidents whose first firing came by `due`
    late: int = 0  # incidents whose first firing came after `due` (a miss)
    false_alarms: int = 0
    duplicates: int = 0
    warmup: int = 0  # firings before scoring starts, not scored
    onset_latency: list[float] = field(default_factory=list)  # first firing minus onset, per incident
    item_latency: list[float] = field(default_factory=list)  # per incident item in the firing window
    evidence_latency: list[float] = field(default_factory=list)  # newest such item to the alert

    @property
    def precision(self) -> float | None:
        pages = self.detected + self.late + self.false_alarms
        return (self.detected + self.late) / pages if pages else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None

    def add(self, other: Score) -> None:
        for name in ("incidents", "detected", "late", "false_alarms", "duplicates", "warmup"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.onset_latency += other.onset_latency
        self.item_latency += other.item_latency
        self.evidence_latency += other.evidence_latency


def score(scenario: Scenario, firings: Sequence[Firing]) -> Score:
    """Match pages to the scenario's incidents (see the module docstring for the rules)."""
    result = Score(incidents=len(scenario.incidents))
    seen: set[str] = set()
    for firing in sorted(firings, key=lambda f: f.created):
        if firing.created < scenario.scored_from:
            result.warmup += 1
            continue
        incident = next((i for i in scenario.incidents if i.onset <= firing.created <= i.end), None)
        if incident is None:
            result.false_alarms += 1
        elif incident.id in seen:
            result.duplicates += 1
        else:
            seen.add(incident.id)
            on_time = firing.created <= incident.due
            result.detected += on_time
            result.late += not on_time
            result.onset_latency.append(firing.created - incident.onset)
            _item_latencies(result, scenario, incident, firing)
    return result


def describe(scenario: Scenario, firing: Firing) -> str:
    """One page in words: when (day and time of the stream), and what the scoring made of it."""
    day = int((firing.created - scenario.start) // DAY) + 1
    when = f"day {day} {datetime.fromtimestamp(firing.created, UTC):%a %H:%M:%S}"
    if firing.created < scenario.scored_from:
        verdict = "warm-up"
    else:
        hit = next((i for i in scenario.incidents if i.onset <= firing.created <= i.end), None)
        verdict = "false alarm" if hit is None else f"{hit.id} +{firing.created - hit.onset:.0f} s"
    return f"{when}  {verdict:<22} {firing.note}"


def _item_latencies(result: Score, scenario: Scenario, incident: Incident, firing: Firing) -> None:
    """Publication-to-alert of each incident post the firing window counted."""
    counted = [
        i.published
        for i in scenario.items
        if i.incident == incident.id and firing.window_start <= i.published < firing.window_end
    ]
    result.item_latency += [firing.created - p for p in counted]
    if counted:
        result.evidence_latency.append(firing.created - max(counted))


def model_label(item: Item, seed: int = 0) -> Tone:
    """The simulated classifier: ~20 % of enthusiastic slang read as negative, ~3 % of the rest wrong."""
    rng = random.Random(f"{seed}:{item.id}")
    if item.slang:
        return "negative" if rng.random() < SLANG_FLIP else item.label
    if rng.random() >= OTHER_FLIP:
        return item.label
    return "neutral" if item.label == "negative" else "negative"


# --- generation ----------------------------------------------------------------------------------

Rate = Callable[[float], float]
Mix = tuple[tuple[str, float], ...]  # (kind, weight)
BACKGROUND: Mix = (("positive", 0.24), ("slang", 0.09), ("neutral", 0.55), ("negative", 0.12))
LAUNCH_MIX: Mix = (("launch_pos", 0.30), ("slang", 0.28), ("launch_neutral", 0.36), ("launch_neg", 0.06))


def daily(peak: float, weekend: float = 1.0) -> Rate:
    """Mentions a minute: busy afternoons, quiet nights (a fifth of the peak at 04:00 UTC)."""

    def rate(t: float) -> float:
        hour = (t % DAY) / HOUR
        day_factor = 0.2 + 0.8 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 4) / 24))
        is_weekend = int((t - MONDAY) // DAY) % 7 >= 5
        return peak * day_factor * (weekend if is_weekend else 1.0)

    return rate


class _Stream:
    """Posts for one brand, built minute by minute from rates and mixes."""

    def __init__(self, name: str, brand: str, seed: int) -> None:
        self.name, self.brand = name, brand
        self.rng = random.Random(f"{seed}:{name}")
        self.items: list[Item] = []
        self.names = _spellings(brand)

    def fill(self, start: float, end: float, rate: Rate, mix: Mix, **fields: Any) -> None:
        """Poisson counts a minute at `rate` (per minute), kinds drawn from `mix`; `fields` go to
        `post` (site, incident, delivered)."""
        kinds, weights = zip(*mix, strict=True)
        t = start
        while t < end:
            for _ in range(_poisson(self.rng, rate(t + 30))):
                kind = self.rng.choices(kinds, weights)[0]
                self.post(t + self.rng.uniform(0, min(60.0, end - t)), kind, **fields)
            t += 60.0

    def post(
        self,
        published: float,
        kind: str,
        *,
        site: str | None = None,
        incident: str | None = None,
        delivered: float | None = None,
    ) -> None:
        rng = self.rng
        text, label, slang = _text(rng, kind, rng.choice(self.names))
        handle = f"{rng.choice(texts.HANDLE_HEADS)}_{rng.choice(texts.HANDLE_TAILS)}{rng.randint(1, 999)}"
        if rng.random() >= 0.7:  # drawn only when used: the seed's streams stay as they were
            handle = f"{rng.choice(texts.FIRST_NAMES)} {rng.choice(texts.LAST_NAMES)}"
        drawn = rng.choice(SITES)
        self.items.append(
            Item(
                id=f"{self.name}-{len(self.items)}",
                published=round(published, 3),
                text=text,
                author=handle,
                site=site or drawn,
                label=label,
                slang=slang,
                incident=incident,
                delivered=delivered,
            )
        )

    def scenario(
        self, description: str, start: float, end: float, *incidents: Incident, warmup: float = 6 * HOUR
    ) -> Scenario:
        items = tuple(sorted(self.items, key=lambda i: i.published))
        return Scenario(self.name, self.brand, description, start, end, start + warmup, items, incidents)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _spellings(brand: str) -> tuple[str, ...]:
    if brand == texts.BRAND:
        return texts.ZEPHYRO_NAMES
    return (brand, brand, brand.lower(), "@" + brand.replace(" ", ""), brand.split()[0])


def _text(rng: random.Random, kind: str, b: str) -> tuple[str, Tone, bool]:
    """One post's wording, its true tone, and whether it is enthusiastic slang."""
    a, p = rng.choice(texts.AREAS), rng.choice(PRODUCTS)
    if kind == "slang":
        return rng.choice(SLANG).format(b=b, p=p) + rng.choice(SLANG_TAILS), "positive", True
    if kind == "outage":
        opener = rng.choice(texts.CRISIS_OPENERS).format(b=b, a=a, h=rng.randint(1, 9))
        problem, closer = rng.choice(texts.CRISIS_PROBLEMS), rng.choice(texts.CRISIS_CLOSERS)
        return f"{opener} {problem}. {closer}{rng.choice(texts.CRISIS_TAGS)}", "negative", False
    if kind == "confused":
        return rng.choice(texts.CRISIS_CONFUSED).format(b=b, a=a), "neutral", False
    if kind == "billing":
        closer = rng.choice(texts.CRISIS_CLOSERS)
        return f"{rng.choice(BILLING).format(b=b)}. {closer}", "negative", False
    if kind.startswith("launch_"):
        tone: Tone = {"pos": "positive", "neutral": "neutral", "neg": "negative"}[kind[7:]]  # type: ignore[assignment]
        return rng.choice(LAUNCH[tone]).format(b=b, p=p, a=a), tone, False
    tone = kind  # type: ignore[assignment]
    bank = texts.ZEPHYRO[tone] + (MORE_NEGATIVE if tone == "negative" else ())
    text = rng.choice(bank).format(b=b, a=a)
    return f"{rng.choice(OPENERS)}{text}{rng.choice(TAILS[tone])}", tone, False


# --- the scenarios -------------------------------------------------------------------------------
# The busy brand peaks at 4 posts a minute (12 % negative); its stream starts on a Monday at
# 00:00 UTC and the incidents fall on day two, after a day that teaches the baseline.

BUSY = 4.0


def daily_cycles(seed: int) -> Scenario:
    s = _Stream("daily-cycles", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(BUSY), BACKGROUND)
    return s.scenario("two ordinary days: busy afternoons, quiet nights; no alert", MONDAY, MONDAY + 2 * DAY)


def outage(seed: int, history: float = DAY) -> Scenario:
    """Complaints jump to 15 a minute within 4 minutes, hold 20 minutes, taper, then come and go
    for an hour: a tail that must not end the spike and page again."""
    s = _Stream("outage", texts.BRAND, seed)
    onset = MONDAY + history + 14 * HOUR if history >= DAY else MONDAY + history
    end = onset + 2 * HOUR
    s.fill(onset - history, end + HOUR, daily(BUSY), BACKGROUND)

    def complaints(t: float) -> float:
        x = (t - onset) / 60
        if x < 4:
            return 15 * x / 4
        if x < 20:
            return 15.0
        if x < 30:
            return 15 - 12.5 * (x - 20) / 10
        return 2.5 if int(x) % 12 < 6 else 0.1  # a long tail that comes and goes

    s.fill(onset, onset + 110 * 60, complaints, (("outage", 0.85), ("confused", 0.15)), incident="outage")
    incident = Incident("outage", onset, onset + 10 * 60, end)
    return s.scenario(
        "a live outage: negatives and volume rise within minutes; one page, fast",
        onset - history,
        end + HOUR,
        incident,
        warmup=min(6 * HOUR, history / 2),
    )


def launch(seed: int) -> Scenario:
    """Volume up about tenfold for six hours; the negative share falls from 12 % to about 7 %."""
    s = _Stream("launch", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(BUSY), BACKGROUND)
    go = MONDAY + DAY + 10 * HOUR

    def buzz(t: float) -> float:
        x = (t - go) / 60
        return 36.0 * min(1.0, x / 20) * (1.0 if x < 360 else max(0.0, 1 - (x - 360) / 120))

    s.fill(go, go + 8 * HOUR, buzz, LAUNCH_MIX)
    return s.scenario("a loved product launch, lots of slang praise; no alert", MONDAY, MONDAY + 2 * DAY)


def slow_crisis(seed: int) -> Scenario:
    """Billing complaints double every 90 minutes for six hours (to about 16x), hold, then fade."""
    s = _Stream("slow-crisis", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(BUSY), BACKGROUND)
    onset = MONDAY + DAY + 8 * HOUR
    usual = 0.12 * BUSY * 0.6  # the brand's mean negatives a minute

    def climb(t: float) -> float:
        h = (t - onset) / HOUR
        level = 2 ** (min(h, 6.0) / 1.5) - 1
        return usual * level * (1.0 if h < 8 else max(0.0, 1 - (h - 8) / 2))

    s.fill(onset, onset + 10 * HOUR, climb, (("billing", 1.0),), incident="slow-crisis")
    incident = Incident("slow-crisis", onset, onset + 5 * HOUR, onset + 10 * HOUR)
    return s.scenario(
        "a slow billing crisis: negatives climb over hours; one page", MONDAY, MONDAY + 2 * DAY, incident
    )


def backfill(seed: int) -> Scenario:
    """A forum source comes back after a day away and delivers a day of old posts at 16:00,
    among them yesterday evening's complaint thread."""
    s = _Stream("backfill", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(BUSY), BACKGROUND)
    back = MONDAY + DAY + 16 * HOUR
    late: dict[str, Any] = {"site": "forum.users.example", "delivered": back}
    s.fill(MONDAY + 14 * HOUR, back - HOUR, daily(BUSY * 0.5), BACKGROUND, **late)
    old = MONDAY + 20 * HOUR
    s.fill(old, old + 15 * 60, lambda t: 3.0, (("outage", 1.0),), **late)
    return s.scenario(
        "a day of old posts, with an old burst, arriving at once; no alert", MONDAY, MONDAY + 2 * DAY
    )


def quiet_brand(seed: int) -> Scenario:
    """About six mentions a day; on day three two complaints three minutes apart."""
    s = _Stream("quiet-brand", "Lumbra Tea", seed)
    s.fill(MONDAY, MONDAY + 3 * DAY, daily(5 / 1440 / 0.6), BACKGROUND)
    for minute in (0, 3):
        s.post(MONDAY + 2 * DAY + 11 * HOUR + minute * 60, "negative")
    return s.scenario("a quiet brand, sparse counts: two complaints must not page", MONDAY, MONDAY + 3 * DAY)


def weekend(seed: int) -> Scenario:
    """Friday to Monday: weekends run at a third of weekday volume, Monday morning climbs back."""
    s = _Stream("weekend", "Velmora Air", seed)
    friday = MONDAY + 4 * DAY
    s.fill(friday, friday + 4 * DAY, daily(BUSY * 1.5, weekend=0.3), BACKGROUND)
    return s.scenario("weekend seasonality, Friday to Monday; no alert", friday, friday + 4 * DAY)


SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "daily-cycles": daily_cycles,
    "outage": outage,
    "launch": launch,
    "slow-crisis": slow_crisis,
    "backfill": backfill,
    "quiet-brand": quiet_brand,
    "weekend": weekend,
}


def build_suite(seed: int = 7, names: Sequence[str] | None = None) -> list[Scenario]:
    return [SCENARIOS[name](seed) for name in (names or SCENARIOS)]
