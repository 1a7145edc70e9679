"""Small, forgiving helpers that turn fetched markup into the plain fields of a `Document`.

Everything here must accept hostile or broken input (unclosed tags, stray bytes,
odd date formats) and return something sensible or `None`, never raise: one bad
item must not cost the rest of the fetch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit, urlunsplit

__all__ = ["canonical_url", "html_to_text", "language_tag", "parse_date", "site_of", "web_url"]

_SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th",
        "tr", "ul",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping.append(tag)
        elif tag in _BLOCK and not self._skipping:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK and not self._skipping:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif tag in _BLOCK and not self._skipping:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str | None) -> str:
    """Reduce HTML (or plain text with entities) to readable text.

    Script and style contents are dropped, block elements become line breaks,
    entities are unescaped and runs of whitespace collapse.
    """
    if not markup:
        return ""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser is lenient, but a bad page must never escape as an error
        return _tidy(re.sub(r"<[^>]*>", " ", markup))
    return _tidy("".join(parser.parts))


def _tidy(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\x00", "").split("\n"))
    joined = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", joined).strip()


_LANG = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*$")


def language_tag(value: str | None) -> str | None:
    """`en-US` -> `en`; anything that is not a language tag -> None."""
    if not value:
        return None
    match = _LANG.match(value)
    return match.group(1).lower() if match else None


def site_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def web_url(url: str | None) -> str | None:
    """The URL if it is http(s), else None: a `javascript:` link must never reach a page or Slack."""
    if not url:
        return None
    cleaned = url.strip()
    return cleaned if cleaned.lower().startswith(("http://", "https://")) else None


def canonical_url(url: str) -> str:
    """The key a page is remembered by: scheme and host lower-cased, fragment dropped."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%d.%m.%Y",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
)


def parse_date(value: str | None) -> datetime | None:
    """Lenient date parsing: ISO 8601, RFC 2822, and a few common written forms.

    Naive results are taken as UTC; everything returned is tz-aware UTC.
    """
    if not value:
        return None
    text = " ".join(value.split())
    if not text:
        return None
    parsed = _iso(text) or _rfc2822(text) or _written(text)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _iso(text: str) -> datetime | None:
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None


def _rfc2822(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _written(text: str) -> datetime | None:
    cleaned = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)
    for fmt in _FORMATS:
        try:
            return datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
    return None
