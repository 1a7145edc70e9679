"""Escaping hostile text for Slack mrkdwn.

Slack parses `<...>` as control sequences (`<!channel>`, `<@U123>`,
`<http://x|label>`), so `&`, `<` and `>` must become entities; nothing else can
ping or link. Literal `@channel`/`@here`/`@everyone` are also defused (with a
zero-width joiner after the `@`) in case `link_names` is ever turned on, and
formatting markers get a zero-width space in front so a post cannot restyle
the alert. Truncation works on the raw text so it never cuts an entity in half.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from alerts.render import clean_line

__all__ = [
    "SECTION_LIMIT",
    "escape",
    "escape_text",
    "link",
    "safe_url",
]

SECTION_LIMIT = 3000  # Slack's limit on a section block's text

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_FORMATTING = frozenset("*_~`")
_ZWJ = "\u200d"
_ZWSP = "\u200b"


def _escape_char(char: str) -> str:
    if char in _ENTITIES:
        return _ENTITIES[char]
    if char in _FORMATTING:
        return _ZWSP + char
    return char


def escape(text: str, limit: int | None = None) -> str:
    """Escape `text` for mrkdwn; with `limit`, cut the raw text so the result fits."""
    text = _BROADCAST.sub(lambda m: "@" + _ZWJ + m.group(1), text)
    out: list[str] = []
    used = 0
    ellipsis = "…"
    for index, char in enumerate(text):
        piece = _escape_char(char)
        if limit is not None:
            room = limit - used - (len(ellipsis) if index < len(text) - 1 else 0)
            if len(piece) > room:
                out.append(ellipsis)
                break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def escape_text(text: str | None, limit: int) -> str:
    """Mention text as one clean line (no control characters), escaped, within `limit`."""
    return escape(clean_line(text, limit=max(limit * 4, limit)), limit=limit)


def safe_url(url: str | None) -> str | None:
    """The URL if it is a plain http(s) link that is safe to put inside `<url|label>`."""
    if not url or any(ord(c) <= 0x20 or c == "\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    # `|` would end the URL part of a Slack link early; `<>&` become entities.
    return url.replace("|", "%7C").replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E")


def link(url: str | None, label: str, limit: int = 200) -> str:
    """A Slack link for http(s) URLs; anything else is shown as escaped plain text."""
    target = safe_url(url)
    shown = escape_text(label, limit) or "link"
    if target is None:
        return shown if not url else f"{shown} ({escape_text(url, limit)})"
    return f"<{target}|{shown}>"
