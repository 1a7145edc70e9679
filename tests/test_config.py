"""A brand team's watch.yaml: good files load, bad ones point at the line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from listener.config import load_config, parse_duration
from listener.errors import ConfigError

GOOD = """\
version: 1
data_dir: ./data
slack:
  bot_token: ${TEST_SLACK_TOKEN}
brands:
  - name: Acme Air
    queries:
      - '"acme air" OR acmeair'
      - 'acme NEAR/3 (outage OR delay*)'
    slack_channel: "#acme-alerts"
    alert:
      bucket: 1m
      window: 5m
      min_count: 4
    sources:
      - type: feed
        name: acme-news
        url: https://news.example.com/acme.rss
        poll_interval: 2m
      - type: spider
        name: acme-forum
        start_urls: [https://forum.example.com/]
        selectors:
          links: "a.thread::attr(href)"
          text: "div.post"
          date: "//time/@datetime"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_a_complete_watch_file_loads_with_secrets_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_TOKEN", "xoxb-secret")
    config = load_config(write(tmp_path, GOOD))
    brand = config.brand("acme air")
    assert brand.queries[1] == "acme NEAR/3 (outage OR delay*)"
    assert brand.alert.bucket == 60.0 and brand.alert.window == 300.0 and brand.alert.min_count == 4
    assert brand.sources[0].poll_interval == 120.0
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.get_secret_value() == "xoxb-secret"
    assert "xoxb-secret" not in repr(config)
    assert config.data_dir == (tmp_path / "data").resolve()


def test_a_missing_secret_names_the_variable_and_the_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_SLACK_TOKEN", raising=False)
    found = problems(tmp_path, GOOD)
    assert found == [
        f"{tmp_path / 'watch.yaml'}:4: slack.bot_token: environment variable TEST_SLACK_TOKEN is not set"
    ]


def test_a_bad_watch_query_points_at_its_line_and_column(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_TOKEN", "x")
    found = problems(tmp_path, GOOD.replace("acme NEAR/3 (outage OR delay*)", "acme AND (outage OR"))
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'watch.yaml'}:9: brands[0].queries[1]: ")
    assert "acme AND (outage OR" in found[0]
    assert "^" in found[0]


def test_an_unknown_field_and_a_bad_duration_are_both_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_TOKEN", "x")
    text = GOOD.replace("      min_count: 4", "      min_count: 4\n      treshold: 3").replace(
        "poll_interval: 2m", "poll_interval: soon"
    )
    found = problems(tmp_path, text)
    assert any(":15: brands[0].alert.treshold: Extra inputs are not permitted" in p for p in found)
    assert any(":20: brands[0].sources[0].poll_interval: 'soon' is not a duration" in p for p in found)


def test_an_unknown_source_type_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SLACK_TOKEN", "x")
    found = problems(tmp_path, GOOD.replace("type: feed", "type: carrier-pigeon"))
    assert len(found) == 1 and ":16: brands[0].sources[0]" in found[0] and "carrier-pigeon" in found[0]


def test_yaml_syntax_errors_give_the_line(tmp_path):
    found = problems(tmp_path, "brands:\n  - name: [unclosed\n")
    assert found[0].startswith(f"{tmp_path / 'watch.yaml'}:3: (syntax):")


def test_a_brand_defined_twice_is_refused(tmp_path):
    found = problems(
        tmp_path,
        "brands:\n  - name: Acme\n    queries: [acme]\n  - name: ACME\n    queries: [acme]\n",
    )
    assert found == [f"{tmp_path / 'watch.yaml'}:2: brands: brand 'ACME' is defined twice"]


def test_a_file_without_brands_says_what_is_expected(tmp_path):
    assert "brands" in problems(tmp_path, "- just a list\n")[0]


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90s", 90.0), ("5m", 300.0), ("1.5h", 5400.0), ("7d", 604800.0)]
)
def test_durations_read_like_people_write_them(text, seconds):
    assert parse_duration(text) == seconds
