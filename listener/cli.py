"""The `listener` command: run the monitor, the demo, config checks and search."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from listener.cli_common import config_option, load_or_exit
from listener.config import parse_duration
from listener.errors import ListenerError, QuerySyntaxError
from listener.textsafe import terminal_safe
from listener.wiring import STAGES

__all__ = ["main"]

@click.group()
@click.option("-v", "--verbose", count=True, help="more log output (-vv for debug)")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="LISTENER_LOG_FORMAT",
    help="json: one object per line, with the stage and mention id where known",
)
def main(verbose: int, log_format: str) -> None:
    """Listener: watch the web for a brand and get a human on negative spikes."""
    from listener.observability import configure_logging

    configure_logging(logging.WARNING - 10 * min(verbose, 2), log_format)


@main.group()
def config() -> None:
    """Check configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Validate FILE; print every problem as file:line: field: message."""
    cfg = load_or_exit(file)
    queries = sum(len(b.queries) for b in cfg.brands)
    sources = sum(len(b.sources) for b in cfg.brands)
    click.echo(f"{file}: ok ({len(cfg.brands)} brands, {queries} watch queries, {sources} sources)")


@main.command()
@config_option
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    help="run only this stage, as one member of its consumer group (default: every stage in one process;"
    " crawl: the sources; incidents: escalation, reminders, digest; web: the web app;"
    " interactivity: Slack's buttons)",
)
@click.option(
    "--web-host", default="127.0.0.1", show_default=True, envvar="LISTENER_WEB_HOST", help="with --stage web"
)
@click.option(
    "--web-port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar="LISTENER_WEB_PORT",
    help="with --stage web",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="LISTENER_METRICS_PORT",
    help="serve Prometheus /metrics and /healthz on this port (default: off)",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, envvar="LISTENER_METRICS_HOST")
def run(
    config_path: Path,
    stage: str | None,
    web_host: str,
    web_port: int,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run every stage (or one, with --stage) on the configured engines until interrupted."""
    from listener.app import Monitor
    from models.loader import load_classifier

    cfg = load_or_exit(config_path)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if stage is not None:
        from listener.stage_process import run_stage

        click.echo(f"Listener stage {stage} on the {cfg.bus.engine} bus. Ctrl-C stops.")
        try:
            run_stage(
                stage,
                cfg,
                stop,
                classifier_factory=lambda: load_classifier(cfg.classifier),
                metrics=None if metrics_port is None else (metrics_host, metrics_port),
                web=(web_host, web_port),
            )
        except KeyboardInterrupt:
            stop.set()
        return
    monitor = Monitor(cfg, classifier_factory=lambda: load_classifier(cfg.classifier))
    click.echo(f"Listener watching {len(cfg.brands)} brand(s); data in {cfg.data_dir}. Ctrl-C stops.")
    monitor.start(stop)
    server = None
    if metrics_port is not None:
        from listener.observability import MetricsServer

        server = MetricsServer(lambda: monitor.runners, monitor.bus, metrics_host, metrics_port).start()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        stop.set()
    monitor.join()
    if server is not None:
        server.stop()
    monitor.close()


@main.command()
@click.option("--until-alert", is_flag=True, help="exit 0 right after the first alert (1 if none in time)")
@click.option("--timeout", default="5m", show_default=True, help="with --until-alert: how long to wait")
@click.option(
    "--data-dir",
    default=Path("listener-data/demo"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="where the demo keeps its bus, index and state (wiped at start)",
)
@click.option("--seed", default=7, show_default=True, help="the generated demo world's seed")
def demo(until_alert: bool, timeout: str, data_dir: Path, seed: int) -> None:
    """Serve a generated demo world on loopback and run the real pipeline on it."""
    from listener.demo.runner import run_demo

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.WARNING))
    code = run_demo(
        until_alert=until_alert,
        timeout=parse_duration(timeout),
        data_dir=data_dir,
        seed=seed,
        echo=click.echo,
    )
    raise SystemExit(code)


@main.command()
@click.argument("query", required=False, default="")
@config_option
@click.option("--brand", help="only this brand")
@click.option("--sentiment", type=click.Choice(["negative", "neutral", "positive", "unscored"]))
@click.option("--source", help="only this configured source")
@click.option("--since", help="only mentions published in the last DURATION, e.g. 7d or 2h")
@click.option("--order", type=click.Choice(["newest", "relevance"]), default="newest", show_default=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--collapse-stories", is_flag=True, help="one hit per story, with its number of mentions")
def search(
    query: str,
    config_path: Path,
    brand: str | None,
    sentiment: str | None,
    source: str | None,
    since: str | None,
    order: str,
    limit: int,
    as_json: bool,
    collapse_stories: bool = False,
) -> None:
    """Search the mention history with the watch-term query language."""
    from listener.app import open_store
    from listener.query.parser import parse
    from pipelines.store import SHOWN_COUNT_LIMIT, SearchRequest

    cfg = load_or_exit(config_path)
    try:
        node = parse(query) if query.strip() else None
        start = datetime.now(UTC) - timedelta(seconds=parse_duration(since)) if since else None
    except QuerySyntaxError as exc:
        click.echo(exc.render(), err=True)
        raise SystemExit(2) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    request = SearchRequest(
        query=node,
        brand=brand,
        sentiment=sentiment,
        source=source,
        since=start,
        order="relevance" if order == "relevance" else "newest",
        limit=limit,
        collapse_story=collapse_stories,
        count_limit=SHOWN_COUNT_LIMIT,
    )
    store = open_store(cfg)
    try:
        result = store.search(request)
    except ListenerError as exc:
        click.echo(f"search failed: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        store.close()
    if as_json:
        for hit in result.hits:
            row: dict[str, Any] = hit.mention.model_dump(mode="json")
            row.update(snippet=hit.snippet, score=hit.score)
            if collapse_stories:
                row.update(story_members=hit.members)
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    unit = "story(ies)" if collapse_stories else "mention(s)"
    more = "+" if result.total_at_least else ""  # a lower bound: counting stopped at the limit
    click.echo(f"{result.total}{more} {unit}; showing {len(result.hits)}")
    for hit in result.hits:
        m = hit.mention
        when = m.published.strftime("%Y-%m-%d %H:%M")
        who = terminal_safe(m.author or "?", 40)
        site = terminal_safe(m.site or "", 80)
        click.echo(f"\n{when}  {m.sentiment.label.value:<8}  {terminal_safe(m.brand, 40)}  {who}  {site}")
        click.echo(f"  {terminal_safe(hit.snippet or m.text, 300)}")
        if collapse_stories and hit.members > 1:
            click.echo(f"  story: {hit.members} mentions")
        if m.url:
            click.echo(f"  {terminal_safe(m.url, 300)}")


from listener.cli_models import evaluate, feedback, train  # noqa: E402  (registered last, after main exists)

main.add_command(train)
main.add_command(evaluate)
main.add_command(feedback)

from listener.cli_ops import dlq, migrate_command, reindex_command  # noqa: E402  (registered last)

main.add_command(dlq)
main.add_command(migrate_command)
main.add_command(reindex_command)

from listener.cli_web import serve, users  # noqa: E402  (registered last, after main exists)

main.add_command(serve)
main.add_command(users)

from listener.cli_alerts import incidents, silence  # noqa: E402  (registered last, after main exists)

main.add_command(incidents)
main.add_command(silence)

from listener.cli_sources import sources  # noqa: E402
from listener.cli_stories import stories  # noqa: E402

main.add_command(sources)
main.add_command(stories)

if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
