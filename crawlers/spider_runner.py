"""Run one crawl of one spider source in a process of its own.

    python -m crawlers.spider_runner < job.json

The job (JSON on stdin) holds `source` (a `SpiderSourceConfig`), `limits` (a
`Limits`), and optionally `state_address`, `crawl_timeout`, `log_level` and `now`
(epoch seconds: the launcher's clock, against which back-offs are checked).
Documents come out on stdout, one JSON object per line; Scrapy's log goes to
stderr, ending with a `LISTENER-CRAWL {...}` line that summarises the crawl
(including the item pages found without text, which the launcher remembers:
this process only reads the fetch state).
Exit status 0 means the crawl ran; 2 means the job was bad; 3 means no start
URL could be fetched.

A process per crawl because Twisted's reactor cannot be restarted inside one
process, and because a page that crashes or hangs the parser then takes down
only this crawl, never the pipeline that launched it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from pydantic import ValidationError

from crawlers.spider import ConfiguredSpider, build_settings
from listener.config import Limits, SitemapSourceConfig, SpiderSourceConfig

__all__ = ["EXIT_BAD_JOB", "EXIT_NOTHING_FETCHED", "RESULT_MARKER", "main", "run_crawl"]

RESULT_MARKER = "LISTENER-CRAWL "
EXIT_BAD_JOB = 2
EXIT_NOTHING_FETCHED = 3


def run_crawl(job: dict[str, Any], output: IO[str]) -> dict[str, Any]:
    """Crawl once, writing documents to `output`; return the summary."""
    from scrapy.crawler import CrawlerProcess

    source, spider_class = _spider_for(job["source"])
    limits = Limits.model_validate(job.get("limits") or {})
    settings = build_settings(
        source,
        limits,
        state_address=job.get("state_address"),
        crawl_timeout=float(job.get("crawl_timeout") or 600.0),
        log_level=str(job.get("log_level") or "INFO"),
        now=None if job.get("now") is None else float(job["now"]),
    )
    output.flush()
    settings["LISTENER_OUTPUT_FD"] = output.fileno()
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(spider_class)
    process.crawl(crawler, source=source)
    process.start()
    spider = crawler.spider
    assert isinstance(spider, spider_class)
    stats = crawler.stats.get_stats() if crawler.stats is not None else {}
    return {
        "ok": bool(spider.start_ok),
        "start_errors": spider.start_errors,
        "pages": stats.get("response_received_count", 0),
        "documents": stats.get("item_scraped_count", 0),
        "dropped": stats.get("item_dropped_count", 0),
        "skipped_seen": stats.get("listener/skipped_seen", 0),
        "skipped_empty": stats.get("listener/skipped_empty", 0),
        "empty_pages": stats.get("listener/empty_pages", []),
        "finish_reason": stats.get("finish_reason"),
    }


def _spider_for(raw: Any) -> tuple[SpiderSourceConfig, Any]:
    """A sitemap source crawls with the sitemap spider; everything else with the listing spider."""
    if isinstance(raw, dict) and raw.get("type") == "sitemap":
        from crawlers.sitemap import ConfiguredSitemapSpider  # imported late: it imports the factory

        return SitemapSourceConfig.model_validate(raw), ConfiguredSitemapSpider
    return SpiderSourceConfig.model_validate(raw), ConfiguredSpider


def _private_stdout() -> IO[str]:
    """Keep the real stdout for documents only; anything else that prints goes to stderr."""
    stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return stream


def main() -> int:
    output = _private_stdout()
    try:
        job = json.loads(sys.stdin.read())
        summary = run_crawl(job, output)
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        print(RESULT_MARKER + json.dumps({"ok": False, "reason": f"bad job: {exc}"}), file=sys.stderr)
        return EXIT_BAD_JOB
    finally:
        output.flush()
    if not summary["ok"]:
        errors = summary["start_errors"] or {"(start urls)": "no start URL answered"}
        summary["reason"] = "; ".join(f"{url}: {why}" for url, why in errors.items())
    print(RESULT_MARKER + json.dumps(summary), file=sys.stderr, flush=True)
    return 0 if summary["ok"] else EXIT_NOTHING_FETCHED


if __name__ == "__main__":
    sys.exit(main())
