"""`listener serve` on the distributed deployment's PostgreSQL state.

A brand team moved its state to PostgreSQL: the operator migrates it, adds an
account and a token with the CLI, and starts the web app with `listener serve`.
An incident the notify stage opened in another process is on the web app's
incident list, and acknowledging it there is seen by every other process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from alertstory import make_alert
from postgres_server import fresh_schema_url
from stageprocs import free_port

from alerts.incidents import IncidentStore
from listener.statedb import PostgresStateDB


def listener(config: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "listener.cli", *args, "-c", str(config)],
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode()


def test_the_web_app_served_on_postgres_shows_and_acts_on_the_shared_incidents(
    tmp_path: Path, postgres_server_url: str
) -> None:
    url = fresh_schema_url(postgres_server_url)
    config = tmp_path / "watch.yaml"
    config.write_text(
        f"data_dir: ./data\nstate:\n  engine: postgres\n  postgres: {{url: '{url}'}}\n"
        "brands:\n  - name: Acme\n    queries: ['acme']\n",
        encoding="utf-8",
    )
    assert "migrated" in listener(config, "migrate")
    listener(
        config, "users", "add", "dana", "--role", "responder", "--password-stdin", stdin="correct horse 1\n"
    )
    token = listener(config, "users", "token", "dana", "--label", "test").strip()

    db = PostgresStateDB(url)
    incidents = IncidentStore(db)
    incident, opened = incidents.open_for(make_alert(), time.time())  # as a notify process opens it
    assert opened

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "listener.cli", "serve", "-c", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                listed = httpx.get(f"{base}/api/incidents", headers=headers, timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "listener serve did not start"
                time.sleep(0.3)
        assert listed.status_code == 200
        assert [i["alert_id"] for i in listed.json()] == [incident.alert_id]
        acked = httpx.post(
            f"{base}/api/incidents/{incident.id}/ack", headers=headers, json={"note": ""}, timeout=10
        )
        assert acked.status_code == 200, acked.text
        seen = incidents.get(incident.id)
        assert seen is not None and seen.state == "acknowledged" and seen.acked_by == "dana"
        assert not (tmp_path / "data" / "incidents.db").exists(), "no local copy of the state"
    finally:
        server.terminate()
        server.wait(timeout=30)
        db.close()
