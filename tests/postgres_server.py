"""A real PostgreSQL server on loopback for the whole session (Debian's `postgresql` package).

initdb into a temporary folder, `pg_ctl start` on a free port, trust auth on
loopback only. PostgreSQL refuses to run as root, so as root the server runs as
the `postgres` user the package creates. Each test gets its own schema, so
tests never see each other's rows and need no cleanup.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fresh_schema_url", "postgres_server_url", "start_again", "start_postgres", "stop_postgres"]


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (apt-get install postgresql)", pytrace=False)
    return on_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def start_postgres(root: Path) -> tuple[str, Path]:
    """Start a server under `root`; its base URL (database `listener`) and its data dir."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_server_user([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
    (root / "server.opts").write_text(options, encoding="utf-8")
    start_again(data)
    subprocess.run(
        [_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "listener"],
        check=True,
        capture_output=True,
    )
    return f"postgresql://postgres@127.0.0.1:{port}/listener", data


def start_again(data: Path) -> None:
    """Start a server made by `start_postgres` (again, after `stop_postgres`), same port and options."""
    root = data.parent
    options = (root / "server.opts").read_text(encoding="utf-8")
    subprocess.run(
        _as_server_user(
            [_bin("pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )


def stop_postgres(data: Path) -> None:
    subprocess.run(
        _as_server_user([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
        check=False,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="listener-pg-"))
    url, data = start_postgres(root)
    try:
        yield url
    finally:
        stop_postgres(data)
        shutil.rmtree(root, ignore_errors=True)


def fresh_schema_url(base_url: str) -> str:
    """A URL whose connections work in a new, empty schema of their own."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base_url}?options=-csearch_path%3D{schema}"
