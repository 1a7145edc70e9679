"""Each configured source's health, as the CLI, the web app and Slack's source notices show it.

Read from the health log the running `crawl` stage writes (in the data dir, or
the shared state database of the distributed deployment); nothing is polled.
"""

from __future__ import annotations

from typing import Any

from crawlers.health import HealthLog, SourceHealth
from listener.brand_settings import effective_brands
from listener.config import Config
from listener.datadir import StateDatabases

__all__ = ["source_health"]


def source_health(
    config: Config,
    *,
    window: float = 86400.0,
    now: float | None = None,
    state: StateDatabases | None = None,
) -> list[dict[str, Any]]:
    """One dict per running source, in watch.yaml order, then those added in the web app
    (used by the CLI, the API and Slack's source notices).

    `state` is the process's open state databases, when it keeps them; without
    it the call opens the configured ones and closes them again.
    """
    from crawlers.factory import brands_by_source

    databases = state or StateDatabases.from_config(config)
    # The running sources: watch.yaml's with the web app's saved changes (switched off, added).
    saved = effective_brands(config.brands, databases.db("brand_settings"))
    config = config.model_copy(update={"brands": saved})
    sections = {s.name: s for brand in config.brands for s in brand.sources}
    brands = brands_by_source(config)
    try:
        health = HealthLog(databases.db("source_health"))
        out = []
        for name, section in sections.items():
            interval = float(getattr(section, "poll_interval", 0.0))
            report = health.report(name, now=now, window=window, poll_interval=interval)
            out.append(_row(section, brands.get(name, []), report))
        return out
    finally:
        if state is None:
            databases.close()


def _row(section: Any, brands: list[str], report: SourceHealth) -> dict[str, Any]:
    return {
        "source": section.name,
        "type": section.type,
        "brands": brands,
        "status": report.status,
        "flags": list(report.flags),
        "polls": report.polls,
        "items": report.items,
        "items_per_hour": round(report.items_per_hour, 2),
        "error_rate": round(report.error_rate, 3),
        "consecutive_failures": report.consecutive_failures,
        "last_success": report.last_success,
        "last_item_at": report.last_item_at,
        "last_error": report.last_error,
        "last_error_at": report.last_error_at,
        "lag_median_s": None if report.lag_median is None else round(report.lag_median, 1),
    }
