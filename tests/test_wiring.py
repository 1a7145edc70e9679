"""One product in both deployments: the monitor and `run --stage` build the same stages.

A brand team that outgrows one machine moves to one process per stage on Kafka,
Elasticsearch and PostgreSQL; it must keep incidents, escalation, silences,
digests and the button endpoint. Both paths go through `listener.wiring`, and
these tests hold them equal: same stages, same kinds of collaborators, and
every piece of state on the state database the config names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from postgres_server import fresh_schema_url

from listener.app import Monitor
from listener.cli import main
from listener.config import load_config
from listener.datadir import COMPONENT_FILES, StateDatabases
from listener.stage_process import build_stage
from listener.wiring import BUS_STAGES, STAGES, Wiring, schemas


class NoModel:
    """Stands in for the sentiment model, which these tests never call: loading it takes seconds."""

    model_id = "none"

    def classify(self, texts: list[str]) -> list[Any]:
        raise AssertionError("not called")


def write_config(tmp_path: Path, state: str = "") -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(
        f"""
data_dir: ./data
slack:
  bot_token: xoxb-test
  signing_secret: s3cret
  base_url: http://127.0.0.1:9/api/
{state}
brands:
  - name: Acme
    queries: ['acme']
    oncall:
      responders: [{{name: Dana, slack_user: U0DANA}}]
      response_time: 15m
    sources:
      - {{type: feed, name: acme-feed, url: "http://127.0.0.1:9/feed", poll_interval: 1m}}
""",
        encoding="utf-8",
    )
    return path


def shape(stage: object) -> dict[str, str]:
    """A stage's collaborators by attribute, as type names: what must not differ."""
    return {
        name: type(value).__name__
        for name, value in sorted(vars(stage).items())
        if not name.startswith("__") and not isinstance(value, int | float | str | bool | type(None))
    }


def test_the_monitor_and_the_stage_processes_build_the_same_stages(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    monitor = Monitor(config, classifier_factory=NoModel)  # type: ignore[arg-type]
    try:
        embedded = monitor.build_stages()
    finally:
        monitor.close()
    apart = [build_stage(name, config, NoModel) for name in BUS_STAGES]  # type: ignore[arg-type]
    assert [s.name for s in embedded] == [s.name for s in apart] == list(BUS_STAGES)
    for one, other in zip(embedded, apart, strict=True):
        assert type(one) is type(other)
        assert shape(one) == shape(other), one.name
    notify = next(s for s in apart if s.name == "notify")
    assert shape(notify).get("desk") == "Desk", "a notify process opens incidents and honours silences"


def test_run_lists_every_stage_and_the_web_app() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output
    assert {"incidents", "web", "interactivity"} <= set(STAGES)


def test_every_state_component_has_a_schema_and_migrate_brings_them_all_current(tmp_path: Path) -> None:
    assert set(schemas()) == set(COMPONENT_FILES)
    path = write_config(tmp_path)
    first = CliRunner().invoke(main, ["migrate", "-c", str(path)])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["migrate", "-c", str(path)])
    assert again.exit_code == 0 and "every component is current" in again.output


@pytest.mark.usefixtures("postgres_server_url")
def test_on_postgres_every_stage_keeps_its_state_in_the_shared_database(
    tmp_path: Path, postgres_server_url: str
) -> None:
    url = fresh_schema_url(postgres_server_url)
    path = write_config(tmp_path, f"state:\n  engine: postgres\n  postgres: {{url: '{url}'}}")
    refused = CliRunner().invoke(main, ["run", "--stage", "incidents", "-c", str(path)])
    assert refused.exit_code != 0 and "listener migrate" in str(refused.output) + str(refused.exception)
    migrated = CliRunner().invoke(main, ["migrate", "-c", str(path)])
    assert migrated.exit_code == 0, migrated.output
    config = load_config(path)
    wiring = Wiring(config, NoModel)  # type: ignore[arg-type]
    try:
        for name in BUS_STAGES:
            wiring.stage(name)
        assert not (config.data_dir / "incidents.db").exists()
        assert sorted(p.name for p in config.data_dir.glob("*.db")) == ["bus.db", "store.db"]
    finally:
        wiring.close()


def test_state_databases_open_one_file_per_embedded_component(tmp_path: Path) -> None:
    state = StateDatabases.from_config(load_config(write_config(tmp_path)))
    try:
        assert state.db("accounts") is state.db("brand_settings"), "both live in web.db"
        assert state.db("incidents") is not state.db("outbox")
    finally:
        state.close()
