"""`listener incidents ...` and `listener silence ...`: the response workflow from a terminal.

Everything printed that came from people (names, notes, brand names) goes
through `terminal_safe`, since a note can be pasted from anywhere.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click

from alerts.incidents import Incident, IncidentStats
from alerts.response import Desk
from listener.config import parse_duration
from listener.errors import IncidentError
from listener.textsafe import terminal_safe

__all__ = ["incidents", "silence"]


_config = click.option(
    "-c",
    "--config",
    "config_path",
    default=os.environ.get("LISTENER_CONFIG", "watch.yaml"),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the watch.yaml to use (or set LISTENER_CONFIG)",
)


@contextmanager
def _desk(config_path: Path) -> Iterator[Desk]:
    from listener.cli_common import load_or_exit, state_of

    config = load_or_exit(config_path)
    with state_of(config) as state:
        desk = Desk.from_state(state, config)
        try:
            yield desk
        except IncidentError as exc:
            click.echo(f"error: {terminal_safe(str(exc), 400)}", err=True)
            raise SystemExit(1) from None
        finally:
            desk.close()


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"


def _line(i: Incident) -> str:
    who = i.resolved_by or i.acked_by or i.responder or "-"
    return (
        f"{i.id:>5}  {i.state:<12}  {terminal_safe(i.brand, 30):<20}  {_when(i.opened_at)}  "
        f"level {i.level}  {terminal_safe(who, 30)}"
    )


@click.group()
def incidents() -> None:
    """List, acknowledge and resolve incidents; see the response clock."""


@incidents.command("list")
@_config
@click.option("--state", type=click.Choice(["open", "acknowledged", "resolved"]))
@click.option("--brand")
@click.option("--limit", default=50, show_default=True)
def list_incidents(config_path: Path, state: str | None, brand: str | None, limit: int) -> None:
    """Newest first."""
    with _desk(config_path) as desk:
        found = desk.incidents.find(state=state, brand=brand, limit=limit)
    click.echo(f"{len(found)} incident(s)")
    for incident in found:
        click.echo(_line(incident))


@incidents.command("show")
@_config
@click.argument("ref")
def show(config_path: Path, ref: str) -> None:
    """One incident (by number or alert id) with its audit trail."""
    with _desk(config_path) as desk:
        incident = desk.incident(ref)
        events = desk.incidents.events(incident.id)
    click.echo(_line(incident))
    click.echo(f"  rule {terminal_safe(incident.rule, 80)}; alert {incident.alert_id}")
    if incident.note:
        click.echo(f"  note: {terminal_safe(incident.note, 1000)}")
    for event in events:
        actor = terminal_safe(event.actor or "listener", 40)
        click.echo(f"  {_when(event.at)}  {event.kind:<13} {actor:<16} {terminal_safe(event.detail, 300)}")


@incidents.command("ack")
@_config
@click.option(
    "--as", "who", default=getpass.getuser, show_default="your login", help="responder name or Slack id"
)
@click.argument("ref")
def ack(config_path: Path, who: str, ref: str) -> None:
    """Acknowledge: you own the incident until it is resolved."""
    with _desk(config_path) as desk:
        incident = desk.acknowledge(ref, who)
    click.echo(f"incident {incident.id} acknowledged by {terminal_safe(incident.acked_by or '', 40)}")


@incidents.command("resolve")
@_config
@click.option(
    "--as", "who", default=getpass.getuser, show_default="your login", help="responder name or Slack id"
)
@click.option("--note", required=True, help="what was done")
@click.argument("ref")
def resolve(config_path: Path, who: str, note: str, ref: str) -> None:
    """Resolve (owner or brand admin only) with a note."""
    with _desk(config_path) as desk:
        incident = desk.resolve(ref, who, note)
    click.echo(f"incident {incident.id} resolved by {terminal_safe(incident.resolved_by or '', 40)}")


def _stats_rows(rows: list[IncidentStats]) -> None:
    click.echo(
        f"{'':<24}{'incidents':>10}{'acked':>7}{'resolved':>9}{'ack p50':>9}{'ack max':>9}"
        f"{'resolve p50':>12}{'not real':>9}"
    )
    for row in rows:
        click.echo(
            f"{terminal_safe(row.key, 22):<24}{row.incidents:>10}{row.acknowledged:>7}{row.resolved:>9}"
            f"{_span(row.median_ack):>9}{_span(row.worst_ack):>9}{_span(row.median_resolve):>12}{row.not_real:>9}"
        )


@incidents.command("stats")
@_config
@click.option("--since", default="30d", show_default=True, help="look back this far")
def stats(config_path: Path, since: str) -> None:
    """Time to acknowledge and to resolve, per brand and per responder."""
    start = time.time() - parse_duration(since)
    with _desk(config_path) as desk:
        by_brand = desk.incidents.stats("brand", since=start)
        by_responder = desk.incidents.stats("responder", since=start)
    click.echo("per brand")
    _stats_rows(by_brand)
    click.echo("per responder (who acknowledged)")
    _stats_rows(by_responder)


@incidents.command("digest")
@_config
@click.option("--brand", help="only this brand (default: every brand)")
@click.option("--post", is_flag=True, help="also post it to the brand's Slack channel")
def digest(config_path: Path, brand: str | None, post: bool) -> None:
    """The recognition digest for the last seven days: who handled what, and how fast."""
    from alerts.digest import WEEK, build_digest, render_mrkdwn, render_text
    from alerts.oncall import Roster
    from alerts.slack import SlackNotifier
    from listener.brand_settings import effective_brands
    from listener.cli_common import load_or_exit, state_of
    from listener.errors import ConfigError, NotifierError

    config = load_or_exit(config_path)
    # With the channels, rotas and brands saved in the web app; archived brands too (their past week).
    with state_of(config) as state:
        known = effective_brands(config.brands, state.db("brand_settings"), archived=True)
    brands = [b for b in known if brand is None or b.name.casefold() == brand.casefold()]
    if not brands:
        unknown = terminal_safe(brand or "", 80)
        raise click.BadParameter(f"no brand {unknown} in the config", param_hint="--brand")
    now, roster = time.time(), Roster(known)
    try:
        slack = SlackNotifier.from_config(config.slack, known) if post else None
        with _desk(config_path) as desk:
            for b in brands:
                found = build_digest(desk.incidents, b.name, now - WEEK, now)
                click.echo(render_text(found), nl=False)
                channel = b.slack_channel or config.slack.default_channel
                if slack is None:
                    continue
                if channel is None:
                    raise NotifierError(f"no Slack channel for brand {b.name!r}", retryable=False)
                slack.post_text(channel, render_mrkdwn(found, roster.get(b.name)))
                click.echo(f"posted to {terminal_safe(channel, 80)}")
    except (ConfigError, NotifierError) as exc:
        click.echo(f"error: {terminal_safe(str(exc), 400)}", err=True)
        raise SystemExit(1) from None


@click.group()
def silence() -> None:
    """Mute a brand (or one of its rules) for a while."""


@silence.command("add")
@_config
@click.option("--rule", help="only this rule (default: every rule of the brand)")
@click.option("--for", "duration", required=True, help="e.g. 1h, 30m, 2d")
@click.option("--reason", default="")
@click.option("--as", "who", default=getpass.getuser, show_default="your login")
@click.argument("brand")
def silence_add(
    config_path: Path, rule: str | None, duration: str, reason: str, who: str, brand: str
) -> None:
    with _desk(config_path) as desk:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
        found = desk.silences.add(brand, seconds, now=time.time(), by=who, rule=rule, reason=reason)
    click.echo(f"silence {found.id}: {terminal_safe(brand, 40)} muted until {_when(found.ends)}")


@silence.command("list")
@_config
@click.option("--all", "everything", is_flag=True, help="include expired and removed silences")
def silence_list(config_path: Path, everything: bool) -> None:
    now = time.time()
    with _desk(config_path) as desk:
        found = desk.silences.listed(now=now, include_expired=everything)
    click.echo(f"{len(found)} silence(s)")
    for s in found:
        state = "active" if s.active(now) else ("removed" if s.removed_at is not None else "expired")
        click.echo(
            f"{s.id:>4}  {state:<8} {terminal_safe(s.brand, 30):<20} "
            f"{terminal_safe(s.rule or '(all rules)', 30):<16}"
            f" until {_when(s.ends)}  by {terminal_safe(s.created_by, 30)}  {terminal_safe(s.reason, 100)}"
        )


@silence.command("remove")
@_config
@click.argument("silence_id", type=int)
def silence_remove(config_path: Path, silence_id: int) -> None:
    with _desk(config_path) as desk:
        desk.silences.remove(silence_id, now=time.time())
    click.echo(f"silence {silence_id} removed")
