"""Turning hostile mention text into safe HTML, and the Jinja2 environment.

Autoescaping is on for every template. The only markup built in Python is the
snippet highlighting (the store's `[[ ]]` markers become `<mark>` after each
piece is escaped) and the SVG chart, whose text is escaped the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

__all__ = ["TEMPLATES", "clean_text", "highlight", "page", "safe_url"]

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_MARK = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_HERE = Path(__file__).parent


def clean_text(text: str | None) -> str:
    """Drops bidi controls, which could make a mention display as something it does not say."""
    return _BIDI.sub("", text or "")


def highlight(snippet: str) -> Markup:
    """`[[word]]` markers to `<mark>`; every other character escaped first."""
    out: list[str] = []
    pos = 0
    text = clean_text(snippet)
    for found in _MARK.finditer(text):
        out.append(str(escape(text[pos : found.start()])))
        out.append(f"<mark>{escape(found.group(1))}</mark>")
        pos = found.end()
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def safe_url(url: str | None) -> str | None:
    """The URL if it is absolute http(s) with a host; anything else (javascript:, data:) is no link."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    return url


TEMPLATES = Jinja2Templates(directory=str(_HERE / "templates"))
TEMPLATES.env.autoescape = True
TEMPLATES.env.filters["highlight"] = highlight
TEMPLATES.env.filters["safe_url"] = safe_url
TEMPLATES.env.filters["clean"] = clean_text


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Renders a page with the signed-in user and their CSRF token available to the layout."""
    session = getattr(request.state, "session", None)
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("csrf", session.csrf if session is not None else "")
    response: HTMLResponse = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    return response
