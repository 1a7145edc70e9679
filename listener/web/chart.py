"""A stacked bar chart of mentions per time bucket, as server-rendered SVG.

No JavaScript: the page reads at a glance, prints, and works under the CSP.
Negative sits at the bottom of each bar in red so a spike is the first thing
seen; every bar has a `<title>` with its exact counts for hover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from pipelines.store import Bucket

__all__ = ["COLOURS", "Span", "stacked_bars"]

COLOURS = {"negative": "#c62828", "neutral": "#9e9e9e", "positive": "#2e7d32", "unscored": "#cfd8dc"}
_ORDER = ("negative", "neutral", "positive", "unscored")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 900, 260, 48, 28, 12


def _nice_max(value: int) -> int:
    """The smallest 1/2/5 x 10^k at or above `value`, so gridlines land on round numbers."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _fill(buckets: list[Bucket], start: datetime, end: datetime, seconds: int) -> list[Bucket]:
    """Every bucket of the window, empty ones included, so gaps read as quiet time."""
    by_start = {b.start: b for b in buckets}
    epoch = int(start.timestamp()) // seconds * seconds
    first = datetime.fromtimestamp(epoch, start.tzinfo)
    out: list[Bucket] = []
    moment = first
    while moment < end:
        out.append(by_start.get(moment) or Bucket(moment, dict.fromkeys(_ORDER, 0)))
        moment += timedelta(seconds=seconds)
    return out


def _label(moment: datetime, seconds: int) -> str:
    return moment.strftime("%H:%M" if seconds < 6 * 3600 else "%m-%d %H:%M")


def _marks(marks: list[tuple[datetime, str]], first: datetime, span: float, plot_w: float) -> list[str]:
    """An incident as a dashed line and a flag where it opened, its label on hover."""
    out: list[str] = []
    for moment, label in marks:
        offset = (moment - first).total_seconds() / span
        if 0 <= offset <= 1:
            x = LEFT + offset * plot_w
            out.append(
                f'<g class="mark"><title>{escape(label)}</title>'
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
                f'<path d="M{x:.1f} {TOP} l6 4 l-6 4 z"/></g>'
            )
    return out


@dataclass(frozen=True)
class Span:
    """A stretch of time to shade behind the bars (a spike): `end` None means still open."""

    start: datetime
    end: datetime | None
    label: str


def _spans(spans: list[Span], first: datetime, span: float, plot_w: float) -> list[str]:
    """A spike as a red band behind the bars with a solid strip along the top, its details on hover.

    Drawn first, so the bars stay readable over it; a spike that began before
    the window starts at the left edge, an open one runs to the right edge.
    """
    out: list[str] = []
    for item in spans:
        left = max(0.0, (item.start - first).total_seconds() / span)
        right = 1.0 if item.end is None else min(1.0, (item.end - first).total_seconds() / span)
        if right <= 0 or left >= 1:
            continue
        x, w = LEFT + left * plot_w, max(3.0, (right - left) * plot_w)
        out.append(
            f'<g class="spike"><title>{escape(item.label)}</title>'
            f'<rect class="band" x="{x:.1f}" y="{TOP}" width="{w:.1f}" height="{HEIGHT - BOTTOM - TOP}"/>'
            f'<rect class="strip" x="{x:.1f}" y="{TOP}" width="{w:.1f}" height="5"/>'
            f'<text x="{x + 3:.1f}" y="{TOP + 16}" class="spike-label">spike</text></g>'
        )
    return out


def stacked_bars(
    buckets: list[Bucket],
    start: datetime,
    end: datetime,
    seconds: int,
    marks: list[tuple[datetime, str]] | None = None,
    spans: list[Span] | None = None,
) -> Markup:
    """The chart for [start, end) in buckets of `seconds`, spikes shaded, incidents flagged;
    all text in it is escaped."""
    filled = _fill(buckets, start, end, seconds)
    highest = max([sum(b.counts.values()) for b in filled] + [1])
    top = 4 * _nice_max(-(-highest // 4))  # four gridlines on whole numbers
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    bar_w = plot_w / max(1, len(filled))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg"'
        ' aria-label="mentions over time by sentiment">'
    ]
    for i in range(5):
        value = top * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{value}</text>')
    if filled:
        parts += _spans(spans or [], filled[0].start, len(filled) * seconds, plot_w)
    every = max(1, len(filled) // 6)
    for index, bucket in enumerate(filled):
        x = LEFT + index * bar_w
        y = TOP + plot_h
        tip = ", ".join(f"{label} {bucket.counts.get(label, 0)}" for label in _ORDER)
        parts.append(f"<g><title>{escape(_label(bucket.start, seconds))}: {escape(tip)}</title>")
        for label in _ORDER:
            count = bucket.counts.get(label, 0)
            if count:
                h = plot_h * count / top
                y -= h
                parts.append(
                    f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}"'
                    f' fill="{COLOURS[label]}"/>'
                )
        parts.append("</g>")
        if index % every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" class="axis">'
                f"{escape(_label(bucket.start, seconds))}</text>"
            )
    if filled:
        parts += _marks(marks or [], filled[0].start, len(filled) * seconds, plot_w)
    parts.append("</svg>")
    return Markup("".join(parts))
