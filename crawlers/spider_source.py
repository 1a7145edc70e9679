"""`SpiderSource`: a configured Scrapy crawl behind the `Source` protocol.

Each poll runs `python -m crawlers.spider_runner` as a subprocess with a hard
timeout, reads the documents it prints, and yields those not seen before. Like
the feed reader it marks nothing seen itself: the caller calls `commit(docs)`
after publishing, so a crash between the two re-reads the items instead of
losing them.

An item page that yields no text (an index page matching the item links, a
paywalled stub, a selector broken by a redesign) is not handed on, so it is never
seen; instead it is remembered in the fetch state with a back-off (1 h, doubling
with each empty fetch in a row, at most 7 days) during which crawls skip it
without spending the page budget. It is tried again after that, and a change of
the source's settings forgets it at once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crawlers.spider import settings_key, validate_selectors
from crawlers.spider_runner import RESULT_MARKER
from crawlers.state import EmptyPage, FetchState
from listener.config import Limits, SpiderSourceConfig
from listener.errors import SourceError
from listener.records import Document
from listener.textsafe import terminal_safe

__all__ = ["SpiderSource", "default_crawl_timeout"]

log = logging.getLogger(__name__)

_GRACE = 30.0  # beyond Scrapy's own CLOSESPIDER_TIMEOUT, before the process is killed
_PROBLEM_LEVELS = ("] WARNING:", "] ERROR:", "] CRITICAL:")


def default_crawl_timeout(config: SpiderSourceConfig, limits: Limits) -> float:
    """Enough for every page to be slow once, plus the politeness delay; at most an hour."""
    per_page = limits.per_host_delay + limits.timeout
    return min(3600.0, max(60.0, limits.timeout + config.max_pages * per_page))


class SpiderSource:
    """One configured site crawl; implements `crawlers.source.Source` plus `commit`."""

    source_type = "spider"

    def __init__(
        self,
        config: SpiderSourceConfig,
        limits: Limits,
        state: FetchState,
        *,
        crawl_timeout: float | None = None,
        log_level: str = "INFO",
        clock: Callable[[], float] = time.time,
    ) -> None:
        validate_selectors(config)
        self.config = config
        self.name = config.name
        self.poll_interval = float(config.poll_interval)
        self.limits = limits
        self.state = state
        self.crawl_timeout = crawl_timeout or default_crawl_timeout(config, limits)
        self.log_level = log_level
        self.clock = clock  # wall clock, epoch seconds: empty-page back-offs outlive the process
        self.settings_key = settings_key(config)
        self.last_summary: dict[str, Any] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config: SpiderSourceConfig, limits: Limits, state: FetchState) -> SpiderSource:
        return cls(config, limits, state)

    def poll(self) -> Iterator[Document]:
        lines = self._crawl()
        documents: dict[str, Document] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                doc = Document.model_validate_json(line)
            except ValidationError as exc:
                log.warning("%s: crawl output line %d is not a document: %s", self.name, number, exc)
                continue
            documents.setdefault(doc.id, doc)
        self._remember_empty(documents)
        fresh = self.state.unseen(self.name, documents)
        for doc_id, doc in documents.items():
            if doc_id in fresh:
                yield doc

    def commit(self, documents: Iterable[Document]) -> None:
        """Mark published documents seen; see the module docstring."""
        self.state.mark_seen(self.name, [doc.id for doc in documents])

    def _remember_empty(self, documents: dict[str, Document]) -> None:
        """Back off item pages that had no text; end the run of those that have text now.

        Written before anything is published: unlike a seen id, a back-off loses
        nothing if the documents of this poll are never published.
        """
        if documents:
            self.state.forget_empty(self.name, documents)
        found = {}
        for page in self.last_summary.get("empty_pages") or []:
            if isinstance(page, dict) and isinstance(page.get("id"), str):
                found[page["id"]] = page
        if not found:
            return
        recorded = self.state.record_empty(self.name, found, self.settings_key, when=self.clock())
        for empty in recorded:
            page = found[empty.item_id]
            log.warning(
                "%s: no text at %s: selector %s matched nothing (%s); not fetched again for %s",
                self.name,
                terminal_safe(str(page.get("url"))),
                terminal_safe(repr(page.get("selector"))),
                _in_a_row(empty),
                _duration(empty.backoff),
            )

    def close(self) -> None:
        """Stop a crawl in progress (its items are fetched again next time: nothing was committed)."""
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def job(self) -> dict[str, Any]:
        return {
            "source": self.config.model_dump(mode="json"),
            "limits": self.limits.model_dump(mode="json"),
            "state_address": self.state.db.address,  # over stdin: a PostgreSQL URL carries its password
            "crawl_timeout": self.crawl_timeout,
            "log_level": self.log_level,
            "now": self.clock(),
        }

    def _crawl(self) -> list[str]:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "crawlers.spider_runner"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=_child_env(),
            )
        except OSError as exc:
            raise SourceError(f"spider {self.name!r}: cannot start the crawler: {exc}") from None
        self._proc = proc
        try:
            stdout, stderr = proc.communicate(json.dumps(self.job()), timeout=self.crawl_timeout + _GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise SourceError(
                f"spider {self.name!r}: crawl killed after {self.crawl_timeout + _GRACE:g}s"
            ) from None
        finally:
            self._proc = None
        if self._closed:
            raise SourceError(f"spider {self.name!r}: crawl stopped because Listener is shutting down")
        self.last_summary = self._relay_log(stderr)
        if proc.returncode != 0:
            reason = self.last_summary.get("reason") or _tail(stderr)
            raise SourceError(f"spider {self.name!r}: crawl failed (exit {proc.returncode}): {reason}")
        return stdout.splitlines()

    def _relay_log(self, stderr: str) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for line in stderr.splitlines():
            if line.startswith(RESULT_MARKER):
                try:
                    summary = json.loads(line[len(RESULT_MARKER) :])
                except ValueError:
                    log.warning("%s: unreadable crawl summary: %s", self.name, line)
            elif any(level in line for level in _PROBLEM_LEVELS):
                log.warning("%s: %s", self.name, line)
            else:
                log.debug("%s: %s", self.name, line)
        return summary


def _child_env() -> dict[str, str]:
    """The child must import this very package, installed or not."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def _in_a_row(page: EmptyPage) -> str:
    return "first time" if page.strikes == 1 else f"{page.strikes} fetches in a row"


def _duration(seconds: float) -> str:
    hours = seconds / 3600.0
    return f"{hours:.3g} h" if hours < 48 else f"{hours / 24:.3g} days"


def _tail(stderr: str, lines: int = 5) -> str:
    return " | ".join(stderr.strip().splitlines()[-lines:]) or "no output"
