"""The layers hold for modules added later too: every part of `listener` sits in one layer.

`lint-imports` (run by `make test`) checks that arrows point down; it can only
check modules the contract names, so a new module of `listener` that nobody
placed would escape it. This test makes placing it part of adding it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [{name.strip() for name in layer.replace("|", ":").split(":")} for layer in contract["layers"]]


def test_every_module_of_listener_is_placed_in_exactly_one_layer() -> None:
    parts = {
        f"listener.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "listener").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    placed = [name for layer in layers() for name in layer]
    assert sorted(set(placed)) == sorted(placed), "a module is in two layers"
    assert parts - set(placed) == set(), "place these modules in a layer in pyproject.toml"


def test_the_rooms_never_reach_up_to_the_roof_and_the_ground_only_holds_ground() -> None:
    roof, rooms, ground = layers()
    assert {"listener.cli", "listener.web", "listener.wiring", "listener.app"} <= roof
    assert {"alerts", "crawlers", "models", "pipelines"} <= rooms
    core = {"listener.records", "listener.errors", "listener.config", "listener.query", "listener.statedb"}
    assert core <= ground
