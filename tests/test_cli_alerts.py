"""A responder works an incident and a silence from the terminal."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from alertstory import HOSTILE, make_alert
from click.testing import CliRunner

from alerts.response import Desk
from listener.cli import main
from listener.config import load_config
from listener.datadir import StateDatabases

WATCH = """
data_dir: data
brands:
  - name: Acme
    queries: ['acme']
    oncall:
      responders:
        - {name: Dana, slack_user: U0DANA}
        - {name: Sam, slack_user: U0SAM}
      escalation: [{responder: Sam, channel: "#acme-escalations"}]
      response_time: 15m
      admins: [U0BOSS]
"""


def setup(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "watch.yaml"
    path.write_text(WATCH)
    config = load_config(path)
    state = StateDatabases.from_config(config)
    desk = Desk.from_state(state, config)
    alert = make_alert(created=datetime.fromtimestamp(time.time(), UTC))
    incident = desk.open(alert)
    desk.open(alert)  # the bus redelivers: still one incident
    state.close()
    return path, str(incident.id)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_responder_acknowledges_and_only_the_owner_or_an_admin_resolves(tmp_path: Path) -> None:
    config, ref = setup(tmp_path)
    code, out = run("incidents", "list", "-c", str(config))
    assert code == 0 and "1 incident(s)" in out and "open" in out
    assert run("incidents", "resolve", "-c", str(config), "--as", "Sam", "--note", "done", ref)[0] == 1
    code, out = run("incidents", "ack", "-c", str(config), "--as", "U0SAM", ref)
    assert code == 0 and "acknowledged by Sam" in out
    code, out = run("incidents", "resolve", "-c", str(config), "--as", "Dana", "--note", "done", ref)
    assert code == 1 and "owned by Sam" in out
    code, out = run("incidents", "resolve", "-c", str(config), "--as", "U0BOSS", "--note", HOSTILE[:60], ref)
    assert code == 0 and "resolved by U0BOSS" in out
    code, out = run("incidents", "show", "-c", str(config), ref)
    assert code == 0 and [k for k in ("opened", "acknowledged", "resolved") if k in out] == [
        "opened",
        "acknowledged",
        "resolved",
    ]
    code, out = run("incidents", "stats", "-c", str(config))
    assert code == 0 and "Acme" in out and "Sam" in out


def test_a_silence_is_added_listed_and_removed(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    code, out = run("silence", "add", "-c", str(config), "--for", "1h", "--reason", "planned outage", "Acme")
    assert code == 0 and "silence 1" in out
    code, out = run("silence", "list", "-c", str(config))
    assert "1 silence(s)" in out and "planned outage" in out and "active" in out
    assert run("silence", "add", "-c", str(config), "--for", "soon", "Acme")[0] != 0
    assert run("silence", "remove", "-c", str(config), "1")[0] == 0
    assert "0 silence(s)" in run("silence", "list", "-c", str(config))[1]
    assert "removed" in run("silence", "list", "-c", str(config), "--all")[1]
