"""Making hostile mention text safe for a terminal or a log line.

A mention can carry ANSI escape sequences, carriage returns or bidi overrides
meant to rewrite what an operator sees; those are replaced by visible escapes.
"""

from __future__ import annotations

import unicodedata

__all__ = ["terminal_safe"]

_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


def terminal_safe(text: str, limit: int | None = None) -> str:
    """One line, no control characters (shown as `\\xNN`), no bidi overrides, optionally cut."""
    out: list[str] = []
    for ch in text:
        if ch in "\n\r\t":
            out.append(" ")
        elif ch in _BIDI or (unicodedata.category(ch) in ("Cc", "Cf") and ch != "\u200d"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    safe = " ".join("".join(out).split())
    if limit is not None and len(safe) > limit:
        safe = safe[: max(0, limit - 1)] + "…"
    return safe
