"""`listener sources status`: every configured source's health, from the data dir.

Reads the health log the running monitor writes (fetch.db in the data dir, in
WAL mode so it is safe while the monitor runs, or the shared state database of
the distributed deployment); it does not poll anything itself.
Exit status 1 when any source is flagged, so a cron job or probe can alert on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from crawlers.health_report import source_health
from listener.config import parse_duration
from listener.textsafe import terminal_safe

__all__ = ["sources"]


@click.group()
def sources() -> None:
    """Sources: their health, from what the monitor recorded."""


@sources.command("status")
@click.option("-c", "--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--window", default="24h", show_default=True, help="span for rates: 1h, 24h, 7d")
@click.option("--json", "as_json", is_flag=True, help="one JSON array, for scripts")
def status(config_path: Path | None, window: str, as_json: bool) -> None:
    """Last success, last error, items/hour, error rate and lag per source; flags failing or silent ones."""
    from listener.cli_common import DEFAULT_CONFIG, load_or_exit

    config = load_or_exit(config_path or Path(DEFAULT_CONFIG))
    rows = source_health(config, window=parse_duration(window))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows, time.time())
    if any(row["flags"] for row in rows):
        raise SystemExit(1)


def _print_table(rows: list[dict[str, Any]], now: float) -> None:
    click.echo(
        f"{'source':<24} {'type':<10} {'status':<14} {'last ok':>9} {'items/h':>8} {'errors':>7} {'lag':>8}"
    )
    for row in rows:
        click.echo(
            f"{terminal_safe(row['source'], 24):<24} {row['type']:<10} {row['status']:<14} "
            f"{_ago(row['last_success'], now):>9} {row['items_per_hour']:>8.1f} "
            f"{row['error_rate']:>7.0%} {_span(row['lag_median_s']):>8}"
        )
        if row["last_error"] and row["flags"]:
            when = _ago(row["last_error_at"], now)
            click.echo(f"    last error {when} ago: {terminal_safe(row['last_error'], 160)}")


def _ago(stamp: float | None, now: float) -> str:
    return "never" if stamp is None else _span(max(0.0, now - stamp))


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
