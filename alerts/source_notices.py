"""Tell a brand's channel when a source it listens to breaks or falls silent, and when it recovers.

A silent source looks exactly like a quiet brand, so the people watching the
brand hear about it where they already look. `SourceNotices.check()` reads the
health report (`crawlers.health_report.source_health`), compares each source's
flags with the last ones it announced (kept in `NoticeLog`, state seam
component `source_notices`, so a restart neither repeats nor forgets a
notice) and posts one line per change to the channel of every brand that
lists the source (its effective channel: one saved in the web app wins over
watch.yaml's, without a restart). Names and error text are escaped for
mrkdwn: an error message can quote a hostile server.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from alerts.escalation import Announcer
from alerts.mrkdwn import escape, escape_text
from listener.config import Config
from listener.datadir import StateDatabases
from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["MIGRATIONS", "NoticeLog", "SourceNotices"]

log = logging.getLogger(__name__)

# NoticeLog's schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS source_notice (source TEXT PRIMARY KEY, flags TEXT NOT NULL, at REAL)",
)


class NoticeLog:
    """The flags last announced per source ("" when it was last announced healthy, or never)."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "source_notices", MIGRATIONS)

    def flags(self, source: str) -> str:
        found = self._db.execute("SELECT flags FROM source_notice WHERE source = ?", (source,)).scalar()
        return "" if found is None else str(found)

    def announced(self, source: str, flags: str, at: float) -> None:
        self._db.execute(
            "INSERT INTO source_notice (source, flags, at) VALUES (?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET flags = excluded.flags, at = excluded.at",
            (source, flags, at),
        )

    def close(self) -> None:
        if self._owned:
            self._db.close()


class SourceNotices:
    """Announced flags, live brands and health all come from `state` (the composition root's
    databases), or from the config's own when none are given (closed with this object)."""

    def __init__(self, config: Config, announcer: Announcer, *, state: StateDatabases | None = None) -> None:
        from listener.brand_settings import LiveBrands

        self.config = config
        self.announcer = announcer
        self._owned = state is None
        self.state = state or StateDatabases.from_config(config)
        self.brands = LiveBrands(config.brands, self.state.db("brand_settings"))
        self.notices = NoticeLog(self.state.db("source_notices"))

    def close(self) -> None:
        self.notices.close()
        if self._owned:
            self.state.close()

    def check(self, now: float | None = None) -> int:
        """Post what changed since the last check; return how many messages went out."""
        from crawlers.health_report import source_health

        sent = 0
        for row in source_health(self.config, now=now, state=self.state):
            flags = ",".join(row["flags"])
            if flags == self.notices.flags(row["source"]):
                continue
            text = _flagged(row) if flags else _recovered(row)
            sent += self._post(row["brands"], text)
            self.notices.announced(row["source"], flags, time.time() if now is None else now)
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
