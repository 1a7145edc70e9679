"""The brand team's first five minutes: `listener demo` reaches an alert, and search finds the crisis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LISTENER = [sys.executable, "-m", "listener.cli"]


def listener(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "127.0.0.1"}
    return subprocess.run(
        [*LISTENER, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_the_demo_raises_an_alert_and_the_crisis_is_searchable(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    started = time.monotonic()
    demo = listener("demo", "--until-alert", "--timeout", "5m", "--data-dir", str(data), timeout=420)
    elapsed = time.monotonic() - started
    print(demo.stdout[-4000:], demo.stderr[-4000:], sep="\n")
    assert demo.returncode == 0, "the demo did not reach an alert"
    assert "First alert after" in demo.stdout
    assert "Zephyro" in demo.stdout
    print(f"demo time to first alert, wall clock incl. interpreter start: {elapsed:.1f}s")

    found = listener(
        "search",
        "-c",
        str(data / "watch.yaml"),
        "zephyro",
        "--sentiment",
        "negative",
        "--json",
        "--limit",
        "50",
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(rows) >= 8, "the spike's negative mentions should be indexed"
    assert all(row["sentiment"]["label"] == "negative" for row in rows)
    assert all(row["brand"] == "Zephyro Fiber" for row in rows)
    assert all("[[" in row["snippet"] for row in rows), "snippets highlight the matched word"

    checked = listener("config", "check", str(data / "watch.yaml"), timeout=60)
    assert checked.returncode == 0 and "ok" in checked.stdout
