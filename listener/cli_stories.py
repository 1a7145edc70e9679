"""`listener stories`: a brand's biggest stories, so one syndicated article reads as one thing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from listener.config import parse_duration
from listener.textsafe import terminal_safe

if TYPE_CHECKING:  # datasketch takes seconds to import; only the command itself needs it
    from listener.stories import Story

__all__ = ["stories"]


@click.command()
@click.option("-c", "--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--brand", default=None, help="default: every brand in the config")
@click.option("--since", default="24h", show_default=True, help="stories active in this span")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True)
def stories(config_path: Path | None, brand: str | None, since: str, limit: int, as_json: bool) -> None:
    """Near-duplicate mentions grouped into stories, biggest first."""
    from listener.cli_common import DEFAULT_CONFIG, load_or_exit, state_of
    from listener.stories import StoryIndex

    config = load_or_exit(config_path or Path(DEFAULT_CONFIG))
    brands = [brand] if brand else [b.name for b in config.brands]
    after = datetime.now(UTC) - timedelta(seconds=parse_duration(since))
    with state_of(config) as state:
        index = StoryIndex(state.db("stories"))
        found = {name: index.stories(name, since=after, limit=limit) for name in brands}
    if as_json:
        out = {name: [_plain(s) for s in items] for name, items in found.items()}
        click.echo(json.dumps(out, indent=2))
        return
    for name, items in found.items():
        click.echo(f"{terminal_safe(name, 60)}: {len(items)} stories")
        for story in items:
            when = story.first_seen.strftime("%Y-%m-%d %H:%M")
            click.echo(f"  {story.members:>4} mentions  reach {story.reach:>6}  since {when}")
            click.echo(f"        {terminal_safe(story.representative, 140)}")


def _plain(story: Story) -> dict[str, object]:
    times = {"first_seen": story.first_seen.isoformat(), "last_seen": story.last_seen.isoformat()}
    return {**vars(story), **times}
