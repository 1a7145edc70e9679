"""`listener serve` and `listener users`: the web app and its accounts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from listener.cli_common import config_option, load_or_exit, state_of
from listener.errors import ListenerError
from listener.web.accounts import ROLES, AccountError, AccountStore

__all__ = ["serve", "users"]

@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def serve(config_path: Path, host: str, port: int) -> None:
    """Serve the web app (search, dashboards, watch terms, incidents) over the configured engines.

    The same as `listener run --stage web`: built by the composition root, so on
    PostgreSQL it reads and writes the state every stage process sees.
    """
    from listener.wiring import Wiring

    cfg = load_or_exit(config_path)
    wiring = Wiring(cfg, classifier_factory=_no_model)
    try:
        if not AccountStore(wiring.state.db("accounts")).users():
            hint = f"listener users add NAME --role admin -c {config_path}"
            click.echo(f"No accounts yet: create one with  {hint}")
        click.echo(f"Listener web app on http://{host}:{port}/ (Ctrl-C stops)")
        wiring.serve_web(host, port)
    except ListenerError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        wiring.close()


def _no_model() -> Any:
    raise AssertionError("the web app classifies nothing")


@click.group()
def users() -> None:
    """Web app accounts."""


@users.command("add")
@click.argument("name")
@config_option
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--brand", "brands", multiple=True, help="an editor's brand (repeat; default: every brand)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def users_add(name: str, config_path: Path, role: str, brands: tuple[str, ...], password_stdin: bool) -> None:
    """Create an account; the password is prompted for (or read from stdin)."""
    cfg = load_or_exit(config_path)
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with state_of(cfg) as state:
        try:
            user = AccountStore(state.db("accounts")).add_user(name, role, password, brands)
        except AccountError as exc:
            click.echo(f"cannot add the user: {exc}", err=True)
            raise SystemExit(2) from None
    click.echo(f"added {user.name} ({user.role})")


@users.command("token")
@click.argument("name")
@config_option
@click.option("--label", default="", help="what the token is for")
def users_token(name: str, config_path: Path, label: str) -> None:
    """Issue an API token for NAME (sent as `Authorization: Bearer TOKEN`); shown only once."""
    cfg = load_or_exit(config_path)
    with state_of(cfg) as state:
        try:
            token = AccountStore(state.db("accounts")).issue_token(name.casefold(), label)
        except AccountError as exc:
            click.echo(f"cannot issue a token: {exc}", err=True)
            raise SystemExit(2) from None
    click.echo(token)


@users.command("list")
@config_option
def users_list(config_path: Path) -> None:
    """Accounts and their roles."""
    cfg = load_or_exit(config_path)
    with state_of(cfg) as state:
        found = AccountStore(state.db("accounts")).users()
    for user in found:
        brands = f"  brands: {', '.join(user.brands)}" if user.brands else ""
        click.echo(f"{user.name}  {user.role}{brands}")
