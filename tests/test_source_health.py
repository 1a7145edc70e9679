"""An operator can tell a broken or silent source from a quiet brand."""

from __future__ import annotations

import json

from api_server import ApiServer, FakeClock, Reply, fixture
from click.testing import CliRunner

from crawlers.factory import build_sources
from crawlers.health import HealthLog
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.cli import main
from listener.config import load_config

pytest_plugins = ["api_fixtures"]

HOUR = 3600.0
T0 = 1_763_600_000.0


def test_a_source_that_usually_speaks_hourly_is_flagged_silent_after_hours_of_nothing(tmp_path):
    log = HealthLog(tmp_path / "fetch.db")
    for hour in range(6):
        log.record("news", ok=True, items=4, lags=[60, 120, 180], when=T0 + hour * HOUR)
    for quarter in range(1, 21):  # then five hours of polls that come back empty
        log.record("news", ok=True, items=0, when=T0 + 5 * HOUR + quarter * 900)
    calm = log.report("news", now=T0 + 6 * HOUR, poll_interval=900)
    assert calm.flags == () and calm.status == "ok"
    assert calm.typical_gap == HOUR and calm.lag_median == 120
    quiet = log.report("news", now=T0 + 10 * HOUR, poll_interval=900)
    assert quiet.flags == ("silent",)
    assert quiet.items == 24 and quiet.items_per_hour == 1.0  # 24 items over the 24 h window


def test_repeated_failures_flag_the_source_and_one_success_clears_it(tmp_path):
    log = HealthLog(tmp_path / "fetch.db")
    log.record("api", ok=True, items=1, when=T0)
    for n in range(1, 4):
        log.record("api", ok=False, error=f"HTTP 503 (try {n})", when=T0 + n * 60)
    failing = log.report("api", now=T0 + 300)
    assert failing.flags == ("failing",) and failing.consecutive_failures == 3
    assert failing.error_rate == 0.75 and failing.last_error == "HTTP 503 (try 3)"
    log.record("api", ok=True, items=2, when=T0 + 400)
    assert log.report("api", now=T0 + 500).flags == ()


def test_a_source_that_never_produced_is_not_called_silent(tmp_path):
    log = HealthLog(tmp_path / "fetch.db")
    for n in range(10):
        log.record("empty", ok=True, items=0, when=T0 + n * HOUR)
    assert log.report("empty", now=T0 + 9.5 * HOUR, poll_interval=HOUR).flags == ()
    assert log.report("unknown", now=T0).status == "never polled"


def test_a_source_nobody_has_polled_for_a_while_is_stale_not_silent(tmp_path):
    """The monitor being down is not the source's fault, and must not read as a quiet brand either."""
    log = HealthLog(tmp_path / "fetch.db")
    for minute in range(0, 60, 5):
        log.record("social", ok=True, items=3, when=T0 + minute * 60)
    assert log.report("social", now=T0 + 3600, poll_interval=300).flags == ()
    assert log.report("social", now=T0 + 3 * 3600, poll_interval=300).flags == ("stale",)


WATCH = """\
data_dir: data
brands:
  - name: Zephyro Fiber
    queries: [zephyro]
    sources:
      - {{type: hackernews, name: hn, query: zephyro, base_url: "{base}/api/v1", max_pages: 1}}
      - {{type: bluesky, name: bsky, query: zephyro, base_url: "{other}"}}
"""


def test_sources_status_shows_what_the_scheduler_recorded_and_exits_1_when_a_source_is_flagged(api, tmp_path):
    api.route("/api/v1/search_by_date", Reply(fixture("hn_search_page1.json")))
    broken = ApiServer()  # another host, so its back-off is its own
    broken.route("/xrpc/app.bsky.feed.searchPosts", Reply({"error": "InternalServerError"}, 500))
    path = tmp_path / "watch.yaml"
    path.write_text(WATCH.format(base=api.base, other=broken.base))
    config = load_config(path)
    with FetchState(config.data_dir / "fetch.db") as state:
        scheduler = Scheduler(build_sources(config, state), state, publish=lambda docs: None)
        for _ in range(3):
            for name in scheduler.sources:
                scheduler._next_due[name] = 0.0
            scheduler.run_once()
        scheduler.close()
    broken.close()
    result = CliRunner().invoke(main, ["sources", "status", "-c", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["source", "type", "status"]
    assert lines[1].split()[:3] == ["hn", "hackernews", "ok"]
    assert lines[2].split()[:3] == ["bsky", "bluesky", "failing"]
    assert "HTTP 500" in lines[3]
    as_json = CliRunner().invoke(main, ["sources", "status", "-c", str(path), "--json"])
    rows = {row["source"]: row for row in json.loads(as_json.output)}
    assert rows["hn"]["items"] == 1 and rows["hn"]["lag_median_s"] > 0
    assert rows["bsky"]["error_rate"] == 1.0 and rows["bsky"]["brands"] == ["Zephyro Fiber"]


def test_a_source_whose_items_cannot_be_published_backs_off_and_shows_as_failing_until_they_go_through(
    api, tmp_path
):
    """The bus refuses this source's writes (a stand-in publish that raises, as a bus client would)."""
    api.route("/api/v1/search_by_date", Reply(fixture("hn_search_page1.json")))
    path = tmp_path / "watch.yaml"
    path.write_text(
        "data_dir: data\nbrands:\n  - name: Zephyro Fiber\n    queries: [zephyro]\n    sources:\n"
        f'      - {{type: hackernews, name: hn, query: zephyro, base_url: "{api.base}/api/v1",'
        " max_pages: 1, poll_interval: 60}\n"
    )
    config = load_config(path)
    published: list[str] = []
    refusals = 3

    def publish(docs):
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise ConnectionError("bus refused the write")
        published.extend(d.author or "" for d in docs)

    clock = FakeClock()
    with FetchState(config.data_dir / "fetch.db") as state:
        scheduler = Scheduler(build_sources(config, state), state, publish, clock)
        waits = []
        for _ in range(3):
            (outcome,) = scheduler.run_once().outcomes
            waits.append(outcome.next_in)
            assert scheduler.run_once().polled == []  # not retried at once
            clock.advance(outcome.next_in)
        status = CliRunner().invoke(main, ["sources", "status", "-c", str(path)])
        assert waits == [120, 240, 480]  # doubling from the 60 s interval
        (hn,) = [line for line in status.output.splitlines() if line.startswith("hn ")]
        assert hn.split()[:3] == ["hn", "hackernews", "failing"], status.output
        assert "publish failed: bus refused the write" in status.output
        assert status.exit_code == 1
        (recovered,) = scheduler.run_once().outcomes
        scheduler.close()
    assert recovered.ok and recovered.next_in == 60
    assert published == ["quietpond"]  # the item the refused polls kept bringing back
    after = CliRunner().invoke(main, ["sources", "status", "-c", str(path)])
    assert after.output.splitlines()[1].split()[:3] == ["hn", "hackernews", "ok"]
