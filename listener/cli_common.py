"""What every `listener` command module shares: the `-c/--config` option and loading it.

Kept apart from `listener.cli` so the command modules it registers can import
it without a circular import.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from listener.config import Config, load_config
from listener.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "config_option", "load_or_exit"]

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
