"""`SpiderSource`: a configured Scrapy crawl behind the `Source` protocol.

Each poll runs `python -m crawlers.spider_runner` as a subprocess with a hard
timeout, reads the documents it prints, and yields those not seen before. Like
the feed reader it marks nothing seen itself: the caller calls `commit(docs)`
after publishing, so a crash between the two re-reads the items instead of
losing them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crawlers.spider import validate_selectors
from crawlers.spider_runner import RESULT_MARKER
from crawlers.state import FetchState
from listener.config import Limits, SpiderSourceConfig
from listener.errors import SourceError
from listener.records import Document

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
    ) -> None:
        validate_selectors(config)
        self.config = config
        self.name = config.name
        self.poll_interval = float(config.poll_interval)
        self.limits = limits
        self.state = state
        self.crawl_timeout = crawl_timeout or default_crawl_timeout(config, limits)
        self.log_level = log_level
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
        fresh = self.state.unseen(self.name, documents)
        for doc_id, doc in documents.items():
            if doc_id in fresh:
                yield doc

    def commit(self, documents: Iterable[Document]) -> None:
        """Mark published documents seen; see the module docstring."""
        self.state.mark_seen(self.name, [doc.id for doc in documents])

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
            "state_path": str(self.state.path),
            "crawl_timeout": self.crawl_timeout,
            "log_level": self.log_level,
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


def _tail(stderr: str, lines: int = 5) -> str:
    return " | ".join(stderr.strip().splitlines()[-lines:]) or "no output"
