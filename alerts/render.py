"""Plain-text rendering of an alert, shared by the console notifier and log lines.

Mention text comes from strangers on the internet. Before any of it reaches an
operator's terminal, ANSI escape sequences, other control characters and
bidirectional overrides are taken out, so a post cannot clear the screen,
forge a coloured "resolved" line or reorder what the operator reads.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from listener.records import Alert, AlertStory, ScoredMention

__all__ = [
    "clean_line",
    "evidence_lines",
    "excerpt",
    "format_window",
    "mix_text",
    "render_text",
    "stories_headline",
    "story_line",
    "summary_line",
]

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and other two-byte ESC sequences;
# the 8-bit forms (0x9b CSI, 0x9d OSC) are matched too.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]"
)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def clean_line(text: str | None, limit: int = 200) -> str:
    """One printable line: escapes removed, whitespace collapsed, at most `limit` characters."""
    if not text:
        return ""
    text = _ANSI.sub("", text)
    out: list[str] = []
    for char in text:
        if char in _BIDI:
            continue
        category = unicodedata.category(char)
        if char.isspace() or category == "Zl" or category == "Zp":
            out.append(" ")
        elif category == "Cc":
            out.append("\N{REPLACEMENT CHARACTER}")
        else:
            out.append(char)
    line = " ".join("".join(out).split())
    if len(line) > limit:
        line = line[: max(limit - 1, 0)].rstrip() + "…"
    return line


def excerpt(mention: ScoredMention, limit: int = 160) -> str:
    """The title when the text is empty; otherwise the text, on one line."""
    return clean_line(mention.text or mention.title, limit)


def format_window(start: datetime, end: datetime) -> str:
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} – {end.strftime(end_format)} UTC"


def _ratio(alert: Alert) -> str:
    if alert.expected <= 0:
        return "n/a"
    return f"{alert.observed / alert.expected:.1f}x"


def climb_text(alert: Alert) -> str:
    """A climb in words: its share of negatives since it began, against the usual share."""
    return (
        f"{alert.negative_share:.0%} of mentions negative since {alert.window_start:%a %H:%M} UTC"
        f"{usual_text(alert)}"
        f" ({alert.observed} of {alert.total}, {alert.expected:.0f} expected)"
    )


def usual_text(alert: Alert) -> str:
    """ ", usually 9 %" when the detector knew the brand's usual share."""
    return "" if alert.usual_share is None else f", usually {alert.usual_share:.0%}"


def summary_line(alert: Alert) -> str:
    """The one-line gist; the brand comes from config but is cleaned all the same."""
    brand = clean_line(alert.brand, 80)
    if alert.status == "resolved":
        # The spike is over; an incident it opened stays open until a person resolves it.
        return (
            f"SPIKE ENDED {brand}: negative volume back to {alert.observed} (expected {alert.expected:.1f})"
        )
    if alert.trigger == "climb":
        return f"NEGATIVE CLIMB {brand}: {climb_text(alert)}"
    # An update belongs to the spike already announced; it must not read like a second alert.
    heading = "STILL RISING" if alert.status == "update" else "NEGATIVE SPIKE"
    return (
        f"{heading} {brand}: {alert.observed} negative mentions vs {alert.expected:.1f} expected "
        f"({_ratio(alert)})"
    )


_LABELS = ("negative", "neutral", "positive", "unscored")


def mix_text(mix: dict[str, int]) -> str:
    """`12 negative · 3 neutral · 1 positive`, in a fixed order, zeros left out."""
    return " · ".join(f"{mix[label]} {label}" for label in _LABELS if mix.get(label))


def _pairs(pairs: tuple[tuple[str, int], ...], limit: int) -> str:
    return ", ".join(f"{clean_line(name, limit)} ({count})" for name, count in pairs)


def stories_headline(alert: Alert) -> str:
    """Whether the negatives are one story told many times or many separate complaints."""
    count, observed = alert.story_count, alert.observed
    if count == 1:
        return f"all {observed} negative mentions are one story"
    if count >= observed:
        return f"{observed} different complaints, no shared story"
    return f"{observed} negative mentions in {count} stories"


def story_line(story: AlertStory, names: int = 3) -> str:
    """`11 mentions on 6 sites (a.example, b.example, c.example, …)`; the caller adds the text."""
    sites = ", ".join(clean_line(name, 60) for name, _ in story.sites[:names])
    more = ", …" if len(story.sites) > names else ""
    where = f"{len(story.sites)} site{'s' if len(story.sites) != 1 else ''} ({sites}{more})"
    return f"{story.members} mention{'s' if story.members != 1 else ''} on {where}"


def evidence_lines(alert: Alert) -> list[str]:
    """Stories first, then the mix, words and sources behind the spike (only what the alert carries)."""
    lines = []
    if alert.top_stories:
        lines.append(f"  stories:  {stories_headline(alert)}")
        for story in alert.top_stories:
            lines.append(f"    - {story_line(story)}: {clean_line(story.text, 160)}")
    if alert.mix:
        lines.append(f"  mix:      {mix_text(alert.mix)}")
    if alert.top_terms:
        lines.append(f"  words:    {_pairs(alert.top_terms, 40)}")
    if alert.top_sources:
        lines.append(f"  sources:  {_pairs(alert.top_sources, 80)}")
    return lines


def render_text(alert: Alert) -> str:
    """A multi-line alert a responder can act on without opening anything else."""
    lines = [
        summary_line(alert),
        f"  rule:     {clean_line(alert.rule, 80)}",
        f"  window:   {format_window(alert.window_start, alert.window_end)}",
        f"  counts:   {alert.observed} negative / {alert.total} total "
        f"({alert.negative_share:.0%} negative{usual_text(alert)}); baseline {alert.expected:.1f}"
        " for such a window",
        f"  alert id: {alert.id}",
    ]
    if alert.channel:
        lines.append(f"  channel:  {clean_line(alert.channel, 80)}")
    lines.extend(evidence_lines(alert))
    for number, mention in enumerate(alert.samples, start=1):
        author = clean_line(mention.author, 60) or "(unknown author)"
        score = mention.sentiment.negative
        reach = sum(max(0, v) for v in mention.engagement.values())
        engaged = f", engagement {reach}" if reach else ""
        lines.append(f"  [{number}] {author} (negative {score:.2f}{engaged}): {excerpt(mention)}")
        lines.append(f"      {clean_line(mention.url, 300) or '(no link)'}")
    return "\n".join(lines) + "\n"
