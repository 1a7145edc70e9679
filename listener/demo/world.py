"""A generated, deterministic world for `listener demo`.

The demo has to show a negative spike being noticed, so the world is a
timeline anchored at the demo's start `t0` (wall clock, UTC):

* **history**: three quiet hours before `t0`, one to three brand mentions a
  minute with a normal mix of tone. All of it is visible at once (a backfill),
  but publication times are spread out, so it teaches the baseline instead of
  looking like a spike.
* **calm**: the first 30 s after `t0`, a few ordinary posts.
* **crisis**: from `t0 + 30 s`, an outage and double-billing storm that
  jumps to several clearly negative posts per second, then tapers off. It
  starts steep on purpose: the detector counts whole one-minute buckets, and
  the first bucket the storm touches should already be enough to fire.
* **recovery**: a trickle of "it's back" posts until `t0 + 15 min`.

Nothing is copied from anywhere: texts are assembled from the phrase banks in
`texts.py` with a seeded RNG, so a seed and `t0` give the same world every time.
Publication times are whole seconds so that HTTP `Last-Modified` (whole
seconds too) can describe exactly what a feed holds.
"""

from __future__ import annotations

import hashlib
import html
import random
import time
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from listener.demo import texts

__all__ = [
    "CHANNELS",
    "CRISIS_END",
    "CRISIS_START",
    "HORIZON",
    "Channel",
    "Phase",
    "Tone",
    "Topic",
    "World",
    "WorldItem",
    "build_world",
]

Channel = Literal["social", "news", "forum", "reviews"]
Topic = Literal["zephyro", "velmora", "chatter", "hiring"]
Tone = Literal["negative", "neutral", "positive"]
Phase = Literal["history", "calm", "crisis", "recovery"]

CHANNELS: tuple[Channel, ...] = ("social", "news", "forum", "reviews")

CRISIS_START = 30
"""Seconds after `t0` when the outage posts begin."""
CRISIS_END = 320
"""Seconds after `t0` when the storm has died down."""
HORIZON = 900
"""Seconds after `t0` after which nothing more is published."""

# (start, end, posts per second) of the crisis, in seconds after t0.
_CRISIS_RATES = ((CRISIS_START, 45, 2.0), (45, 200, 3.0), (200, 260, 1.5), (260, CRISIS_END, 0.5))


@dataclass(frozen=True, slots=True)
class WorldItem:
    """One post, article, forum thread or review; `topic`/`tone`/`phase` are ground truth."""

    guid: str
    channel: Channel
    slug: str
    published: int
    author: str
    title: str
    text: str
    topic: Topic
    tone: Tone
    phase: Phase
    html: str | None = None
    rating: int | None = None

    @property
    def path(self) -> str:
        """Where the server publishes the item's own page."""
        return f"/{self.channel}/{self.slug}"

    @property
    def published_at(self) -> datetime:
        return datetime.fromtimestamp(self.published, UTC)


class World:
    """Every item of the demo, with time-gated views per channel."""

    def __init__(self, seed: int, t0: int, items: Iterable[WorldItem]) -> None:
        self.seed = seed
        self.t0 = t0
        self.brand = texts.BRAND
        self.other_brand = texts.OTHER_BRAND
        ordered = sorted(items, key=lambda item: item.published)
        self.items: tuple[WorldItem, ...] = tuple(ordered)
        self._by_channel = {c: [i for i in ordered if i.channel == c] for c in CHANNELS}
        self._times = {c: [i.published for i in self._by_channel[c]] for c in CHANNELS}
        self._by_slug = {(i.channel, i.slug): i for i in ordered}

    def visible(self, channel: Channel, now: float, limit: int | None = None) -> list[WorldItem]:
        """Items of `channel` published at or before `now`, newest first."""
        count = bisect_right(self._times[channel], now)
        start = 0 if limit is None else max(0, count - limit)
        return self._by_channel[channel][start:count][::-1]

    def item(self, channel: str, slug: str) -> WorldItem | None:
        return self._by_slug.get((channel, slug))  # type: ignore[arg-type]

    def between(self, start: float, end: float) -> list[WorldItem]:
        """Items published in `[start, end)`, oldest first; for tests and summaries."""
        return [i for i in self.items if start <= i.published < end]

    @property
    def crisis_window(self) -> tuple[int, int]:
        return self.t0 + CRISIS_START, self.t0 + CRISIS_END

    def __len__(self) -> int:
        return len(self.items)


class _Builder:
    """Draws the items; one RNG, consumed in a fixed order, so output depends only on the seed."""

    def __init__(self, seed: int, t0: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.t0 = t0
        self.items: list[WorldItem] = []

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))]

    def fill(self, template: str) -> str:
        return template.format(
            b=self.pick(texts.ZEPHYRO_NAMES), a=self.pick(texts.AREAS), h=self.rng.randint(2, 9)
        )

    def author(self, channel: Channel) -> str:
        if channel == "news":
            return f"{self.pick(texts.FIRST_NAMES)} {self.pick(texts.LAST_NAMES)}"
        if channel == "reviews":
            return f"{self.pick(texts.FIRST_NAMES)} {self.pick(texts.LAST_NAMES)[0]}."
        head, tail = self.pick(texts.HANDLE_HEADS), self.pick(texts.HANDLE_TAILS)
        return f"{head}{tail}{self.rng.randint(1, 99)}" if self.rng.random() < 0.6 else f"{head}_{tail}"

    def channel(self, weights: tuple[float, float, float, float]) -> Channel:
        return self.rng.choices(CHANNELS, weights=weights)[0]

    def add(
        self,
        offset: float,
        channel: Channel,
        text: str,
        topic: Topic,
        tone: Tone,
        phase: Phase,
        *,
        extra_html: str = "",
    ) -> None:
        number = len(self.items)
        digest = hashlib.sha256(f"{self.seed}:{self.t0}:{number}".encode()).hexdigest()[:8]
        slug = f"{number:05d}-{digest}"
        title = "" if channel == "social" else _title(text, channel, tone)
        rating = _rating(tone, self.rng) if channel == "reviews" else None
        body = (
            None
            if channel in ("social", "reviews")
            else f"<p>{html.escape(text, quote=False)}</p>{extra_html}"
        )
        self.items.append(
            WorldItem(
                guid=f"urn:listener-demo:{self.t0}:{slug}",
                channel=channel,
                slug=slug,
                published=self.t0 + int(offset),
                author=self.author(channel),
                title=title,
                text=text,
                topic=topic,
                tone=tone,
                phase=phase,
                html=body,
                rating=rating,
            )
        )

    def ordinary(self, offset: float, phase: Phase) -> None:
        """One everyday brand mention with the usual spread of tone."""
        tone: Tone = self.rng.choices(("negative", "neutral", "positive"), weights=(0.12, 0.45, 0.43))[0]
        channel = self.channel((0.62, 0.08, 0.18, 0.12))
        self.add(offset, channel, self.fill(self.pick(texts.ZEPHYRO[tone])), "zephyro", tone, phase)

    def background(self, offset: float, phase: Phase) -> None:
        """Something the brand's watch terms must leave alone (or route elsewhere)."""
        roll = self.rng.random()
        if roll < 0.5:
            tone: Tone = self.rng.choices(("negative", "neutral", "positive"), weights=(0.2, 0.4, 0.4))[0]
            channel = self.channel((0.6, 0.25, 0.1, 0.05))
            self.add(offset, channel, self.pick(texts.VELMORA[tone]), "velmora", tone, phase)
        elif roll < 0.95:
            channel = self.channel((0.6, 0.15, 0.25, 0.0))
            self.add(offset, channel, self.fill(self.pick(texts.CHATTER)), "chatter", "neutral", phase)
        else:
            self.add(offset, "social", self.fill(self.pick(texts.HIRING)), "hiring", "neutral", phase)


def _title(text: str, channel: Channel, tone: Tone) -> str:
    if channel == "reviews":
        return {"positive": "Great service", "neutral": "It's okay", "negative": "Very disappointed"}[tone]
    for stop in (". ", "? ", "! "):
        head, found, _ = text.partition(stop)
        if found:
            text = head + stop.strip()
            break
    return text if len(text) <= 80 else text[:77].rstrip() + "..."


def _rating(tone: Tone, rng: random.Random) -> int:
    return {"positive": rng.choice((4, 5, 5)), "neutral": 3, "negative": rng.choice((1, 1, 2))}[tone]


def _history(b: _Builder, seconds: int) -> None:
    for minute in range(-(seconds // 60), 0):
        start = minute * 60
        for _ in range(b.rng.choice((1, 1, 2, 2, 2, 3))):
            b.ordinary(start + b.rng.randrange(60), "history")
        for _ in range(b.rng.choice((0, 0, 1, 1, 2))):
            b.background(start + b.rng.randrange(60), "history")


def _calm(b: _Builder) -> None:
    offset = 2.0
    while offset < CRISIS_START:
        if b.rng.random() < 0.7:
            b.ordinary(offset, "calm")
        else:
            b.background(offset, "calm")
        offset += b.rng.uniform(4.0, 9.0)


def _complaint(b: _Builder) -> str:
    opener = b.fill(b.pick(texts.CRISIS_OPENERS))
    problem = b.pick(texts.CRISIS_PROBLEMS)
    return f"{opener} {problem}. {b.pick(texts.CRISIS_CLOSERS)}{b.pick(texts.CRISIS_TAGS)}"


def _crisis_post(b: _Builder, offset: float) -> None:
    channel = b.channel((0.74, 0.0, 0.17, 0.09))
    if b.rng.random() < 0.08:
        b.add(offset, channel, b.fill(b.pick(texts.CRISIS_CONFUSED)), "zephyro", "neutral", "crisis")
    elif channel == "reviews":
        text = f"{b.pick(texts.CRISIS_REVIEWS)} {b.pick(texts.CRISIS_CLOSERS)}"
        b.add(offset, channel, text, "zephyro", "negative", "crisis")
    else:
        b.add(offset, channel, _complaint(b), "zephyro", "negative", "crisis")


def _crisis(b: _Builder) -> None:
    for start, end, rate in _CRISIS_RATES:
        offset = start + b.rng.expovariate(rate)
        while offset < end:
            _crisis_post(b, offset)
            offset += b.rng.expovariate(rate)
    for offset, (title, body) in zip((100, 170), texts.CRISIS_NEWS, strict=True):
        area = b.pick(texts.AREAS)
        b.add(offset, "news", f"{title.format(a=area)}. {body}", "zephyro", "negative", "crisis")
    _syndicated(b)
    _hostile(b)


def _syndicated(b: _Builder) -> None:
    """One wire story on several news sites: many mentions, one story."""
    title, body = texts.SYNDICATED_STORY
    text = body.format(a=b.pick(texts.AREAS))
    for n, outlet in enumerate(texts.SYNDICATION_OUTLETS):
        copy = f"{title}. ({outlet}) {text} More local news from {outlet}."
        b.add(36 + 5 * n, "news", copy, "zephyro", "negative", "crisis")  # out before the first alert


def _hostile(b: _Builder) -> None:
    """A few posts whose text is markup or chat syntax, to prove every sink escapes it."""
    channels: tuple[Channel, ...] = ("social", "forum", "reviews")
    for offset, channel, template in zip((62, 96, 141), channels, texts.HOSTILE, strict=True):
        text = template.format(b=b.pick(texts.ZEPHYRO_NAMES[:2]))
        # The forum entry's HTML carries a live <script>, the way a hostile site would send it.
        script = "<script>alert('pwned')</script>" if channel == "forum" else ""
        b.add(offset, channel, text, "zephyro", "negative", "crisis", extra_html=script)


def _recovery(b: _Builder) -> None:
    offset = CRISIS_END + b.rng.uniform(3.0, 8.0)
    while offset < HORIZON:
        if b.rng.random() < 0.6:
            tone, template = texts.RECOVERY[b.rng.randrange(len(texts.RECOVERY))]
            channel = b.channel((0.7, 0.0, 0.2, 0.1))
            b.add(offset, channel, b.fill(template), "zephyro", tone, "recovery")  # type: ignore[arg-type]
        elif b.rng.random() < 0.5:
            b.ordinary(offset, "recovery")
        else:
            b.background(offset, "recovery")
        offset += b.rng.uniform(6.0, 18.0)


def build_world(seed: int = 7, t0: float | None = None, *, history: float = 3 * 3600) -> World:
    """The demo world for `seed`, anchored at `t0` (epoch seconds, default now).

    `history` is how many seconds of quiet past to generate before `t0`; the
    alert rule's baseline learns from it.
    """
    start = int(time.time() if t0 is None else t0)
    builder = _Builder(seed, start)
    _history(builder, int(history))
    _calm(builder)
    _crisis(builder)
    _recovery(builder)
    return World(seed, start, builder.items)
