"""The distributed deployment as docker/compose.yaml describes it.

No Docker engine (nor `docker compose config`) runs here, so the compose file is read
as YAML, merge keys resolved as Compose resolves them, and every part of it that
Listener owns is checked against the code: each stage service runs a command the CLI
accepts, mounts a config that loads, and reaches the services it names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from listener.cli import main
from listener.config import load_config
from listener.wiring import STAGES

DOCKER = Path(__file__).resolve().parent.parent / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(autouse=True)
def state_url(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The state URL compose gives every service (with the default password filled in)."""
    url = compose["services"]["migrate"]["environment"]["LISTENER_STATE_URL"]
    monkeypatch.setenv("LISTENER_STATE_URL", url.replace("${POSTGRES_PASSWORD:-listener}", "listener"))


def parse_cli(argv: list[str]) -> tuple[click.Context, click.Context]:
    """The contexts `listener ARGV` would run in, parsed by the real CLI (nothing is run)."""
    split = next(i for i, arg in enumerate(argv) if arg in main.commands)
    group = click.Command("listener", params=main.params).make_context("listener", list(argv[:split]))
    name, rest = argv[split], list(argv[split + 1 :])
    return group, main.commands[name].make_context(name, rest, parent=group)


def test_every_stage_has_a_service_running_it_on_the_mounted_config(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for stage in STAGES:
        service = services[stage]
        assert service["image"] == "listener:latest"
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        _, ctx = parse_cli(service["command"])
        assert ctx.params["stage"] == stage
        config_path = ctx.params["config_path"]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert str(config_path) in mounts, f"{stage} reads a config it does not mount"
        host_side = DOCKER / mounts[str(config_path)]
        assert host_side.resolve() == (DOCKER / "watch.yaml").resolve()
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["LISTENER_METRICS_PORT"] == "9100"
        assert "LISTENER_STATE_URL" in service["environment"]


def test_every_copy_shares_state_in_postgres_and_keeps_only_caches_locally(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # --scale needs no fixed name and no host port, which several replicas could not share.
    for stage in STAGES:
        if stage != "web":
            assert "container_name" not in services[stage] and "ports" not in services[stage]
        data = [m.split(":")[0] for m in services[stage]["volumes"] if m.endswith(":/data")]
        assert data in ([], ["model-cache"]), f"{stage} keeps state in a volume of its own: {data}"
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    _, ctx = parse_cli(services["migrate"]["command"])
    assert ctx.info_name == "migrate"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all(p.startswith("127.0.0.1:") for p in services["web"]["ports"])
    partitions = load_config(DOCKER / "watch.yaml").bus.kafka.partitions
    assert partitions >= 4, "--scale classify=4 needs at least four partitions to give each replica work"


def test_the_mounted_config_points_every_stage_at_the_compose_services(compose: dict[str, Any]) -> None:
    cfg = load_config(DOCKER / "watch.yaml")
    assert cfg.state.engine == "postgres" and cfg.state.postgres is not None
    assert "@postgres:5432/" in cfg.state.postgres.url.get_secret_value()
    assert cfg.bus.engine == "kafka" and cfg.store.engine == "elasticsearch"
    assert str(cfg.data_dir) == "/data"
    kafka = compose["services"]["kafka"]["environment"]
    assert cfg.bus.kafka.bootstrap_servers == [kafka["KAFKA_ADVERTISED_LISTENERS"].split("//", 1)[1]]
    host = re.match(r"https?://([^:/]+)", cfg.store.elasticsearch.url)
    assert host is not None and host.group(1) in compose["services"]
    assert cfg.bus.kafka.replication_factor == kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_kafka_runs_kraft_on_one_node_and_elasticsearch_as_one_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "healthcheck" in kafka
    es = compose["services"]["elasticsearch"]
    assert es["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:8.")
    assert es["environment"]["discovery.type"] == "single-node"
    assert es["environment"]["xpack.security.enabled"] == "false"
    # With security off, the node must not be reachable from beyond the host.
    assert all(str(p).startswith("127.0.0.1:") for p in es["ports"])
    text = (DOCKER / "compose.yaml").read_text()
    assert "Security is off because" in text, "the security choice is explained where it is made"


def test_the_embedded_deployment_is_still_there_behind_a_profile(compose: dict[str, Any]) -> None:
    listener = compose["services"]["listener"]
    assert listener["profiles"] == ["embedded"]
    _, ctx = parse_cli(listener["command"])
    assert ctx.params["stage"] is None


def test_the_image_installs_the_scale_engines_and_checks_health() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert 'pip install ".[scale]"' in dockerfile
    assert "EXPOSE 9100" in dockerfile and "/healthz" in dockerfile
    assert re.search(r'^ENTRYPOINT \["listener"\]$', dockerfile, re.M)
