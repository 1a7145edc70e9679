"""Tell a brand's channel when a source it listens to breaks or falls silent, and when it recovers.

A silent source looks exactly like a quiet brand, so the people watching the
brand hear about it where they already look. `SourceNotices.check()` reads the
health report (`listener.cli_sources.source_health`), compares each source's
flags with the last ones it announced (kept in the fetch-state file, so a
restart neither repeats nor forgets a notice) and posts one line per change to
the channel of every brand that lists the source (its effective channel: one
saved in the web app wins over watch.yaml's, without a restart). Names and
error text are escaped for mrkdwn: an error message can quote a hostile server.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from alerts.escalation import Announcer
from alerts.mrkdwn import escape, escape_text
from listener.config import Config

__all__ = ["SourceNotices"]

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS source_notice (source TEXT PRIMARY KEY, flags TEXT NOT NULL, at REAL)"


class SourceNotices:
    def __init__(self, config: Config, announcer: Announcer, *, path: str | Path | None = None) -> None:
        from listener.brand_settings import LiveBrands

        self.config = config
        self.announcer = announcer
        self.brands = LiveBrands(config.brands, Path(config.data_dir) / "web.db")
        self._lock = threading.Lock()
        where = path or Path(config.data_dir) / "fetch.db"
        self._conn = sqlite3.connect(where, check_same_thread=False, timeout=30)
        with self._lock, self._conn:
            self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def check(self, now: float | None = None) -> int:
        """Post what changed since the last check; return how many messages went out."""
        from listener.cli_sources import source_health

        sent = 0
        for row in source_health(self.config, now=now):
            flags = ",".join(row["flags"])
            with self._lock:
                known = self._conn.execute(
                    "SELECT flags FROM source_notice WHERE source = ?", (row["source"],)
                ).fetchone()
            before = known[0] if known else ""
            if flags == before:
                continue
            text = _flagged(row) if flags else _recovered(row)
            sent += self._post(row["brands"], text)
            with self._lock, self._conn:
                self._conn.execute(
                    "INSERT OR REPLACE INTO source_notice VALUES (?, ?, ?)",
                    (row["source"], flags, time.time() if now is None else now),
                )
        return sent

    def _post(self, brands: list[str], text: str) -> int:
        channels = []
        for name in brands:
            channel = self.brands.channel(name) or self.config.slack.default_channel
            if channel and channel not in channels:
                channels.append(channel)
        for channel in channels:
            try:
                self.announcer.post_text(channel, text)
            except Exception as exc:  # the next check tries again only on a new change; say so loudly
                log.error("could not post a source-health notice to %s: %s", channel, exc)
        return len(channels)


def _flagged(row: dict[str, Any]) -> str:
    name = escape(str(row["source"]), 80)
    if "failing" in row["flags"]:
        error = escape_text(row["last_error"] or "unknown error", 300)
        why = f"has failed {row['consecutive_failures']} polls in a row (last error: {error})"
    else:
        why = "has produced nothing for much longer than usual"
    return (
        f":warning: Source *{name}* ({escape(str(row['type']), 20)}) {why}. "
        "Mentions from it may be missing: a quiet brand here may not be quiet."
    )


def _recovered(row: dict[str, Any]) -> str:
    return f":white_check_mark: Source *{escape(str(row['source']), 80)}* is working again."
