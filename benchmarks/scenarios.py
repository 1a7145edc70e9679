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

Worlds: the detector's defaults are chosen on seed 7 (`TUNING_SEED`), which
keeps the fixed shapes the suite was written with, so a figure on it is
in-sample. Any other seed draws each scenario's shape from `RANGES` (`world`):
how busy and how negative the brand is, how much slang, the outage's peak,
ramp and tail, the launch's size and negative share (falling or steady), the
slow climb's doubling time and top, the time of day of each event, the
backfill's size, the quiet brand's rate, the weekend's dip. `due` and `end`
follow each drawn shape (see `outage` and `slow_crisis`). `short` cuts a
scenario to its point and a little history, for a test that runs in seconds.

The texts come from the demo's phrase banks plus enthusiastic slang ("is
sick", "killing it", "stupid good") that a sentiment model trained on tweets
tends to read as negative; `model_label` simulates that error profile.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from listener.demo import texts

__all__ = [
    "RANGES",
    "SCENARIOS",
    "TUNING_SEED",
    "Firing",
    "Incident",
    "Item",
    "Scenario",
    "Score",
    "World",
    "arrival",
    "build_suite",
    "describe",
    "model_label",
    "score",
    "short",
    "world",
]

Tone = Literal["negative", "neutral", "positive"]
HOUR = 3600.0
DAY = 86400.0
# A Monday, so weekdays and the weekend fall where the calendar puts them.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
TUNING_SEED = 7  # the seed the detector's defaults are chosen on: figures on it are in-sample
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
ASIDES = (
    "{text}",
    "{text}",
    "{text}",
    "{text}",
    "{text} (in {a})",
    "{text} — {a} here",
    "{n} min ago: {text}",
    "{text} [edit: typo]",
    "re: {text}",
    "{text} #{a}",
    "{text} ... anyone else in {a}?",
    "honestly, {text}",
    "{text} (posted from my phone)",
    "lol {text}",
    "{text} {n}/10",
    "+1, {text}",
)
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
    focus: tuple[float, float] = (0.0, 0.0)  # the span the scenario is about (see `short`)

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


def model_label(item: Item, seed: int = 0, slang_flip: float = SLANG_FLIP) -> Tone:
    """The simulated classifier: `slang_flip` of enthusiastic slang read as negative (~20 % by
    default; the real default model was measured at 47 %), ~3 % of the rest wrong."""
    rng = random.Random(f"{seed}:{item.id}")
    if item.slang:
        return "negative" if rng.random() < slang_flip else item.label
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
        # Held-out worlds can be ten times busier than the tuning one; asides keep their posts
        # from repeating a few hundred strings (the tuning seed's draws stay as they were).
        self.asides = ASIDES if seed != TUNING_SEED else ("",)

    def fill(
        self, start: float, end: float, rate: Rate, mix: Mix | Callable[[float], Mix], **fields: Any
    ) -> None:
        """Poisson counts a minute at `rate` (per minute), kinds drawn from `mix` (or from
        `mix(t)`, for a mix that changes); `fields` go to `post` (site, incident, delivered)."""
        kinds, weights = zip(*mix, strict=True) if not callable(mix) else ((), ())
        t = start
        while t < end:
            if callable(mix):
                kinds, weights = zip(*mix(t + 30), strict=True)
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
        if len(self.asides) > 1:
            text = rng.choice(self.asides).format(text=text, a=rng.choice(texts.AREAS), n=rng.randint(2, 59))
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
        self,
        description: str,
        start: float,
        end: float,
        *incidents: Incident,
        warmup: float = 6 * HOUR,
        focus: tuple[float, float],
    ) -> Scenario:
        items = tuple(sorted(self.items, key=lambda i: i.published))
        scored_from = start + warmup
        return Scenario(self.name, self.brand, description, start, end, scored_from, items, incidents, focus)


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


# --- the worlds ----------------------------------------------------------------------------------
# The detector's defaults are chosen on the tuning seed, so a figure on that seed is in-sample.
# Every other seed draws each scenario's shape (how busy the brand is, how negative, how big and
# when the outage, the launch, the climb, the backfill are) from the ranges below: a held-out seed
# is another world, not the same world with other noise.


@dataclass(frozen=True)
class World:
    """One scenario's shape parameters; the defaults are the tuning seed's fixed shapes.

    Rates are posts a minute, hours are UTC hours of the day of the event, spans in minutes
    unless named `_hours`.
    """

    busy: float = 4.0  # the brand's afternoon peak (a fifth of it at 04:00)
    background: Mix = BACKGROUND  # the brand's everyday kinds of post
    outage_hour: float = 14.0
    outage_peak: float = 15.0  # complaints a minute at the peak
    outage_ramp: float = 4.0  # minutes from the first complaint to the peak
    outage_hold: float = 16.0  # minutes at the peak
    outage_taper: float = 10.0  # minutes from the peak down to the tail
    outage_tail: float = 2.5  # complaints a minute while the tail is on (6 minutes in 12)
    outage_tail_len: float = 80.0
    launch_hour: float = 10.0
    launch_size: float = 9.0  # launch posts a minute, in multiples of the brand's peak rate
    launch_hours: float = 6.0  # at full size, then two hours of fading
    launch_slang: float = 0.28  # share of launch posts that are enthusiastic slang
    launch_negative: tuple[float, float] = (0.06, 0.06)  # negative share at the start, at the end
    climb_hour: float = 8.0
    climb_doubling: float = 90.0  # minutes for the complaint rate to double
    climb_multiple: float = 16.0  # negatives a minute at the top, over the brand's usual
    backfill_hour: float = 16.0  # the source comes back on day two; it left 26 hours before
    backfill_rate: float = 0.5  # its posts a minute while away, in multiples of the brand's rate
    backfill_burst_after: float = 6.0  # hours after the source left, the old complaint burst
    backfill_burst: float = 3.0  # complaints a minute in the burst
    backfill_burst_len: float = 15.0
    quiet_per_day: float = 5.0  # the quiet brand's mentions a day
    quiet_hour: float = 11.0  # day three, the two complaints
    quiet_gap: float = 3.0  # minutes between them
    weekend_busy: float = 6.0
    weekend_factor: float = 0.3  # weekend volume over weekday volume

    @property
    def negative_share(self) -> float:
        return dict(self.background)["negative"]

    @property
    def usual_negatives(self) -> float:
        """The brand's mean negatives a minute over a day (the daily cycle averages 0.6 of peak)."""
        return self.negative_share * self.busy * 0.6

    @property
    def climb_hours(self) -> float:
        """Hours from the first extra complaint to the top: doublings times the doubling time."""
        return self.climb_doubling / 60 * math.log2(self.climb_multiple)


# Uniform draws (busy and weekend_busy log-uniform: as many quiet brands as busy ones). The
# launch's negative share is drawn at its start below min(10 %, the brand's share), then falls or
# stays: a launch that is loved, never one that turns sour.
RANGES: dict[str, tuple[float, float]] = {
    "busy": (1.0, 10.0),
    "negative": (0.06, 0.20),
    "slang": (0.04, 0.15),
    "positive_of_rest": (0.2, 0.4),
    "outage_hour": (7.0, 21.0),
    "outage_peak": (6.0, 30.0),
    "outage_ramp": (2.0, 12.0),
    "outage_hold": (8.0, 30.0),
    "outage_taper": (5.0, 20.0),
    "outage_tail": (0.5, 4.0),
    "outage_tail_len": (30.0, 100.0),
    "launch_size": (5.0, 15.0),
    "launch_hours": (3.0, 7.0),
    "launch_slang": (0.15, 0.35),
    "launch_negative": (0.02, 0.10),
    "launch_fall": (0.4, 1.0),
    "climb_doubling": (60.0, 150.0),
    "climb_multiple": (10.0, 25.0),
    "backfill_hour": (10.0, 20.0),
    "backfill_rate": (0.2, 1.0),
    "backfill_burst_after": (1.0, 10.0),
    "backfill_burst": (1.5, 5.0),
    "backfill_burst_len": (10.0, 25.0),
    "quiet_per_day": (2.0, 10.0),
    "quiet_hour": (8.0, 20.0),
    "quiet_gap": (1.0, 10.0),
    "weekend_busy": (1.0, 10.0),
    "weekend_factor": (0.2, 0.6),
}


def world(seed: int, name: str) -> World:
    """Scenario `name`'s shape for `seed`: the fixed shapes on the tuning seed, else drawn."""
    if seed == TUNING_SEED:
        return World()
    rng = random.Random(f"world:{seed}:{name}")
    d = {key: rng.uniform(lo, hi) for key, (lo, hi) in RANGES.items()}
    for key in ("busy", "weekend_busy"):
        lo, hi = RANGES[key]
        d[key] = lo * (hi / lo) ** ((d[key] - lo) / (hi - lo))
    negative, slang = d.pop("negative"), d.pop("slang")
    positive = (1 - negative - slang) * d.pop("positive_of_rest")
    neutral = 1 - negative - slang - positive
    start = min(d.pop("launch_negative"), negative)
    fall = d.pop("launch_fall")
    fall = fall if rng.random() >= 0.3 else 1.0  # falling, or steady
    drawn = World(
        background=(("positive", positive), ("slang", slang), ("neutral", neutral), ("negative", negative)),
        launch_negative=(start, start * fall),
        # late enough that the launch has faded by midnight, early enough to be a working day's
        launch_hour=rng.uniform(8.0, min(14.0, 22.0 - d["launch_hours"])),
        **d,
    )
    # the climb starts after 04:00 and has faded (top, two hours held, two fading) by midnight
    return replace(drawn, climb_hour=rng.uniform(4.0, 20.0 - drawn.climb_hours))


def launch_mix(w: World, at: float) -> Mix:
    """The launch's kinds of post `at` (0 to 1 through the launch): the negative share moves
    linearly from its start to its end value, the rest split as on the tuning seed."""
    first, last = w.launch_negative
    negative = first + (last - first) * min(1.0, max(0.0, at))
    if (w.launch_slang, w.launch_negative) == (World.launch_slang, World.launch_negative):
        return LAUNCH_MIX
    rest = 1 - w.launch_slang - negative
    return (
        ("launch_pos", rest * 0.45),
        ("slang", w.launch_slang),
        ("launch_neutral", rest * 0.55),
        ("launch_neg", negative),
    )


# --- the scenarios -------------------------------------------------------------------------------
# The main brand's streams start on a Monday at 00:00 UTC and the incidents fall on day two, after
# a day that teaches the baseline. Each scenario records its `focus`, the span its point is in, so
# that `short` can cut it down to that span and a little history for a quick test.


def daily_cycles(seed: int) -> Scenario:
    w = world(seed, "daily-cycles")
    s = _Stream("daily-cycles", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(w.busy), w.background)
    focus = (MONDAY + DAY + 4 * HOUR, MONDAY + DAY + 12 * HOUR)  # the morning climb
    return s.scenario(
        "two ordinary days: busy afternoons, quiet nights; no alert", MONDAY, MONDAY + 2 * DAY, focus=focus
    )


def outage(seed: int, history: float = DAY) -> Scenario:
    """Complaints jump to the peak (15 a minute within 4 minutes on the tuning seed), hold, taper,
    then come and go for an hour or so: a tail that must not end the spike and page again.

    Due 6 minutes after the peak is reached (10 minutes after onset on the tuning seed): by then
    the outage is the loudest thing in the stream. One incident until the tail is over."""
    w = world(seed, "outage")
    s = _Stream("outage", texts.BRAND, seed)
    hour = w.outage_hour * HOUR
    onset = MONDAY + history + hour if history >= DAY else MONDAY + history
    peak_at = w.outage_ramp + w.outage_hold
    tail_at = peak_at + w.outage_taper
    over = tail_at + w.outage_tail_len  # minutes
    end = onset + (over + 10) * 60
    s.fill(onset - history, end + HOUR, daily(w.busy), w.background)

    def complaints(t: float) -> float:
        x = (t - onset) / 60
        if x < w.outage_ramp:
            return w.outage_peak * x / w.outage_ramp
        if x < peak_at:
            return w.outage_peak
        if x < tail_at:
            return w.outage_peak - (w.outage_peak - w.outage_tail) * (x - peak_at) / w.outage_taper
        return w.outage_tail if int(x) % 12 < 6 else 0.1  # a long tail that comes and goes

    s.fill(onset, onset + over * 60, complaints, (("outage", 0.85), ("confused", 0.15)), incident="outage")
    incident = Incident("outage", onset, onset + (w.outage_ramp + 6) * 60, end)
    return s.scenario(
        "a live outage: negatives and volume rise within minutes; one page, fast",
        onset - history,
        end + HOUR,
        incident,
        warmup=min(6 * HOUR, history / 2),
        focus=(onset, end + HOUR),
    )


def launch(seed: int) -> Scenario:
    """Volume up five- to fifteenfold for hours (tuning seed: 36 a minute for six hours) while
    the negative share falls or holds (tuning seed: from 12 % overall to about 7 %)."""
    w = world(seed, "launch")
    s = _Stream("launch", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(w.busy), w.background)
    go = MONDAY + DAY + w.launch_hour * HOUR
    full, span = w.launch_hours * 60, w.launch_hours * HOUR + 2 * HOUR

    def buzz(t: float) -> float:
        x = (t - go) / 60
        return (
            w.launch_size * w.busy * min(1.0, x / 20) * (1.0 if x < full else max(0.0, 1 - (x - full) / 120))
        )

    s.fill(go, go + span, buzz, lambda t: launch_mix(w, (t - go) / span))
    return s.scenario(
        "a loved product launch, lots of slang praise; no alert",
        MONDAY,
        MONDAY + 2 * DAY,
        focus=(go, go + span),
    )


def slow_crisis(seed: int) -> Scenario:
    """Billing complaints double every 90 minutes for six hours to 16x the usual negatives on the
    tuning seed (doubling time and top drawn on other seeds), hold two hours, fade over two.

    Due when it has plausibly become a crisis: two doublings (negatives at 4x the usual) plus two
    hours to be sure it is no blip, 5 hours after onset on the tuning seed."""
    w = world(seed, "slow-crisis")
    s = _Stream("slow-crisis", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(w.busy), w.background)
    onset = MONDAY + DAY + w.climb_hour * HOUR
    top, doubling = w.climb_hours, w.climb_doubling / 60

    def climb(t: float) -> float:
        h = (t - onset) / HOUR
        level = 2 ** (min(h, top) / doubling) - 1
        return w.usual_negatives * level * (1.0 if h < top + 2 else max(0.0, 1 - (h - top - 2) / 2))

    end = onset + (top + 4) * HOUR
    s.fill(onset, end, climb, (("billing", 1.0),), incident="slow-crisis")
    incident = Incident("slow-crisis", onset, min(end, onset + (2 * doubling + 2) * HOUR), end)
    return s.scenario(
        "a slow billing crisis: negatives climb over hours; one page",
        MONDAY,
        MONDAY + 2 * DAY,
        incident,
        focus=(onset, end),
    )


def backfill(seed: int) -> Scenario:
    """A forum source comes back after a day away and delivers a day of old posts at once (16:00
    on the tuning seed), among them a complaint burst from while it was away."""
    w = world(seed, "backfill")
    s = _Stream("backfill", texts.BRAND, seed)
    s.fill(MONDAY, MONDAY + 2 * DAY, daily(w.busy), w.background)
    back = MONDAY + DAY + w.backfill_hour * HOUR
    left = back - DAY - 2 * HOUR
    late: dict[str, Any] = {"site": "forum.users.example", "delivered": back}
    s.fill(left, back - HOUR, daily(w.busy * w.backfill_rate), w.background, **late)
    old = left + w.backfill_burst_after * HOUR
    burst = w.backfill_burst
    s.fill(old, old + w.backfill_burst_len * 60, lambda t: burst, (("outage", 1.0),), **late)
    return s.scenario(
        "a day of old posts, with an old burst, arriving at once; no alert",
        MONDAY,
        MONDAY + 2 * DAY,
        focus=(back - HOUR, back + 2 * HOUR),
    )


def quiet_brand(seed: int) -> Scenario:
    """A handful of mentions a day (5 on the tuning seed); on day three two complaints minutes apart."""
    w = world(seed, "quiet-brand")
    s = _Stream("quiet-brand", "Lumbra Tea", seed)
    s.fill(MONDAY, MONDAY + 3 * DAY, daily(w.quiet_per_day / 1440 / 0.6), w.background)
    first = MONDAY + 2 * DAY + w.quiet_hour * HOUR
    for at in (first, first + w.quiet_gap * 60):
        s.post(at, "negative")
    return s.scenario(
        "a quiet brand, sparse counts: two complaints must not page",
        MONDAY,
        MONDAY + 3 * DAY,
        focus=(first - HOUR, first + 2 * HOUR),
    )


def weekend(seed: int) -> Scenario:
    """Friday to Monday: weekends run at a fraction of weekday volume (a third on the tuning
    seed), Monday morning climbs back."""
    w = world(seed, "weekend")
    s = _Stream("weekend", "Velmora Air", seed)
    friday = MONDAY + 4 * DAY
    s.fill(friday, friday + 4 * DAY, daily(w.weekend_busy, weekend=w.weekend_factor), w.background)
    monday = friday + 3 * DAY
    return s.scenario(
        "weekend seasonality, Friday to Monday; no alert",
        friday,
        friday + 4 * DAY,
        focus=(monday + 4 * HOUR, monday + 12 * HOUR),
    )


def short(scenario: Scenario, history: float = 2 * HOUR) -> Scenario:
    """The scenario cut to its focus and `history` before it, for a run of a few seconds.

    Posts are kept by when they reach the product (so a backfill keeps its old posts); the first
    half of the history (at most six hours) is warm-up, as for a short outage."""
    start, end = scenario.focus[0] - history, scenario.focus[1]
    items = tuple(i for i in scenario.items if start <= arrival(i) < end)
    incidents = tuple(i for i in scenario.incidents if start <= i.onset < end)
    scored_from = start + min(6 * HOUR, history / 2)
    return replace(scenario, start=start, end=end, scored_from=scored_from, items=items, incidents=incidents)


def arrival(item: Item) -> float:
    """When the post reaches the product, before any delivery delay."""
    return item.published if item.delivered is None else item.delivered


SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "daily-cycles": daily_cycles,
    "outage": outage,
    "launch": launch,
    "slow-crisis": slow_crisis,
    "backfill": backfill,
    "quiet-brand": quiet_brand,
    "weekend": weekend,
}


def build_suite(
    seed: int = TUNING_SEED, names: Sequence[str] | None = None, history: float | None = None
) -> list[Scenario]:
    """The scenarios `names` (default all) of seed `seed`; each cut by `short` when `history` is given."""
    suite = [SCENARIOS[name](seed) for name in (names or SCENARIOS)]
    return suite if history is None else [short(s, history) for s in suite]
