"""`listener dlq list|replay` and `listener reindex`: operating a deployment on either engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from listener.cli_common import config_option, load_or_exit
from listener.errors import ListenerError
from listener.ops import (
    ENGINES,
    LetterRef,
    ListedLetter,
    count,
    dead_letters,
    open_store_engine,
    reindex,
    replay,
)
from listener.textsafe import terminal_safe

__all__ = ["dlq", "migrate_command", "reindex_command"]

def _fail(exc: ListenerError | ValueError) -> NoReturn:
    click.echo(f"error: {terminal_safe(str(exc), 2000)}", err=True)
    raise SystemExit(1)


@click.group()
def dlq() -> None:
    """Dead letters: messages a stage could not process, kept with the error and their origin."""


def _line(item: ListedLetter) -> str:
    letter = item.letter
    if letter is None:
        return f"{item.ref}  ?  {item.problem}"
    return (
        f"{item.ref}  {letter.stage:<9} {letter.topic}@{letter.partition}:{letter.offset}  "
        f"key={terminal_safe(letter.key, 60)}  attempts={letter.attempts}\n"
        f"    error: {terminal_safe(letter.error, 300)}\n"
        f"    payload ({letter.payload_encoding}): {terminal_safe(letter.payload, 200)}"
    )


@dlq.command("list")
@config_option
@click.option("--stage", help="only letters from this stage")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def dlq_list(config_path: Path, stage: str | None, limit: int, as_json: bool) -> None:
    """List dead letters (oldest first) without moving any consumer group's offset."""
    from listener.app import open_bus

    cfg = load_or_exit(config_path)
    bus = open_bus(cfg)
    try:
        items = [
            i for i in dead_letters(bus, limit) if stage is None or (i.letter and i.letter.stage == stage)
        ]
    except ListenerError as exc:
        _fail(exc)
    finally:
        bus.close()
    for item in items:
        if as_json:
            body = {"ref": str(item.ref), "problem": item.problem}
            if item.letter is not None:
                body.update(json.loads(item.letter.to_bytes()))
            click.echo(json.dumps(body, ensure_ascii=True))
        else:
            click.echo(_line(item))
    if not as_json:
        click.echo(f"{len(items)} dead letter(s)", err=True)


@dlq.command("replay")
@config_option
@click.argument("refs", nargs=-1)
@click.option("--stage", help="replay every letter from this stage")
@click.option("--all", "replay_all", is_flag=True, help="replay every dead letter")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
def dlq_replay(
    config_path: Path, refs: tuple[str, ...], stage: str | None, replay_all: bool, limit: int
) -> None:
    """Put dead letters REFS (PARTITION:OFFSET, as `dlq list` shows) back on their topics.

    Do it once the cause is fixed: the stage sees the original bytes again. The
    letters stay in the dead-letter topic; downstream stages upsert by id, so a
    second replay of the same letter is harmless.
    """
    from listener.app import open_bus

    if sum((bool(refs), stage is not None, replay_all)) != 1:
        raise click.UsageError("name the letters (PARTITION:OFFSET ...), or give --stage or --all")
    cfg = load_or_exit(config_path)
    bus = open_bus(cfg)
    try:
        parsed = [LetterRef.parse(r) for r in refs]
        done = replay(bus, dead_letters(bus, limit), refs=parsed, stage=stage)
    except (ListenerError, ValueError) as exc:
        _fail(exc)
    finally:
        bus.close()
    for item in done:
        assert item.letter is not None
        click.echo(f"replayed {item.ref} -> {item.letter.topic} (key {terminal_safe(item.letter.key, 60)})")
    click.echo(f"{len(done)} dead letter(s) replayed", err=True)


@click.command("reindex")
@config_option
@click.option("--from", "source", required=True, type=click.Choice(ENGINES), help="the store to read")
@click.option("--to", "target", required=True, type=click.Choice(ENGINES), help="the store to fill")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000))
def reindex_command(config_path: Path, source: str, target: str, batch: int) -> None:
    """Copy every mention from one search store to the other (upserts: safe to re-run)."""
    if source == target:
        raise click.UsageError("--from and --to name the same store")
    cfg = load_or_exit(config_path)
    try:
        src = open_store_engine(cfg, source)
    except ListenerError as exc:
        _fail(exc)
    try:
        dst = open_store_engine(cfg, target)
    except ListenerError as exc:
        src.close()
        _fail(exc)
    try:
        bar = click.progressbar(length=count(src), label=f"{source} -> {target}", file=sys.stderr)
        with bar:
            copied = reindex(src, dst, batch=batch, progress=bar.update)
    except ListenerError as exc:
        _fail(exc)
    finally:
        src.close()
        dst.close()
    click.echo(f"reindexed {copied} mention(s) from {source} to {target}")


@click.command("migrate")
@config_option
def migrate_command(config_path: Path) -> None:
    """Bring the state database's tables to this version's schema (run once per upgrade).

    The embedded SQLite files migrate themselves when opened; a shared PostgreSQL
    database is migrated only by this command, before the new services start.
    """
    from listener.datadir import StateDatabases
    from listener.wiring import migrate

    cfg = load_or_exit(config_path)
    state = StateDatabases.from_config(cfg)
    try:
        applied = migrate(state)
    except ListenerError as exc:
        _fail(exc)
    finally:
        state.close()
    where = "PostgreSQL" if cfg.state.engine == "postgres" else str(cfg.data_dir)
    changed = {name: n for name, n in applied.items() if n}
    if not changed:
        click.echo(f"state in {where}: every component is current ({len(applied)} components)")
        return
    for name, n in sorted(changed.items()):
        click.echo(f"{name}: {n} schema step(s) applied")
    click.echo(f"state in {where}: migrated")
