"""What every `listener` command module shares: the `-c/--config` option and loading it.

Kept apart from `listener.cli` so the command modules it registers can import
it without a circular import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from listener.config import Config, load_config
from listener.datadir import StateDatabases
from listener.errors import ConfigError, StateError

__all__ = ["DEFAULT_CONFIG", "config_option", "load_or_exit", "state_of"]

DEFAULT_CONFIG = os.environ.get("LISTENER_CONFIG", "watch.yaml")

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the watch.yaml to use (or set LISTENER_CONFIG)",
)


def load_or_exit(config_path: Path) -> Config:
    """Load the config or print every problem as file:line: field: message and exit 2."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None


@contextmanager
def state_of(config: Config) -> Iterator[StateDatabases]:
    """The state databases `config` names, closed afterwards; a refusal exits 1 with its reason.

    A command reads the same rows as the running stages: the data dir's files, or
    the shared PostgreSQL database of the distributed deployment.
    """
    state = StateDatabases.from_config(config)
    try:
        yield state
    except StateError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        state.close()
