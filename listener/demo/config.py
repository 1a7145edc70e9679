"""Write the `watch.yaml` that points Listener at the demo server.

The file is written as commented YAML rather than dumped from a dict: the
demo is often the first `watch.yaml` a brand team reads, so it doubles as a
worked example of queries, sources, selectors and an alert rule. Values are
inserted as quoted scalars (single-quoted, or JSON strings, which are valid
YAML double-quoted scalars), so a base URL or path can never break the file's
structure.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["DEMO_QUERIES", "write_demo_config"]

DEMO_QUERIES: dict[str, tuple[str, ...]] = {
    "Zephyro Fiber": (
        '("zephyro fiber" OR zephyro OR zephyrofiber OR zephyrodown) NOT (hiring OR "job opening")',
        "zephyro NEAR/4 (outage OR down OR billing OR billed)",
    ),
    "Velmora Air": ('"velmora air" OR velmora',),
}

_TEMPLATE = """\
# Listener demo: watch the fictional internet provider "Zephyro Fiber" (and an
# airline, "Velmora Air") on a generated world served at {base_url_comment}.
# Everything below is a normal watch.yaml; copy it as a starting point.
version: 1
data_dir: {data_dir}

limits:
  # The demo server is on loopback, so politeness delays can be tiny.
  per_host_delay: 0.05
  per_host_concurrency: 4
  timeout: 5s
  obey_robots_txt: true

classifier:
  model: default
  batch_size: 32

brands:
  - name: Zephyro Fiber
    slack_channel: "#zephyro-alerts"
    queries:
      # Word boundaries keep out "Zephyroville" and "Zephyros"; NOT drops job ads.
      - {query_zephyro_main}
      # Which mentions talk about the outage or the bill.
      - {query_zephyro_near}
    # Every source is matched against every brand's queries.
    sources:
      - type: feed
        name: chirp-social
        url: {social}
        poll_interval: 2s
      - type: feed
        name: metro-wire-news
        url: {news}
        poll_interval: 3s
      - type: feed
        name: broadbandtalk-forum
        url: {forum}
        poll_interval: 3s
      - type: spider
        name: reviewnest
        start_urls: [{reviews}]
        max_pages: 25       # listing and review pages per crawl; reviews already read are skipped
        poll_interval: 6s
        selectors:
          links: "a.review-link::attr(href)"   # review pages linked from a listing page
          next_page: "a.next::attr(href)"     # older reviews
          title: "h1.item-title::text"
          text: "div.item-body ::text"
          author: "span.author::text"
          date: "time::attr(datetime)"
    alert:
      name: negative-spike
      bucket: 60s       # count negative mentions per minute of publication time
      baseline: 3h      # learn the normal rate from the last three hours
      window: 5m        # compare the last five minutes against it
      min_count: 8      # fewer negatives than this never page anyone
      min_ratio: 3.0    # and there must be at least 3x the expected number

  - name: Velmora Air
    slack_channel: "#velmora-social"
    queries:
      - {query_velmora}
"""


def _q(value: str) -> str:
    """A YAML scalar for any string: single quotes read best; JSON escapes everything else."""
    if value.isprintable() and "'" not in value:
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)


def write_demo_config(path: Path, base_url: str, data_dir: Path) -> Path:
    """Write the demo's `watch.yaml` to `path` (parents created) and return `path`."""
    base = base_url.rstrip("/")
    zephyro = DEMO_QUERIES["Zephyro Fiber"]
    text = _TEMPLATE.format(
        base_url_comment=base.replace("\n", " "),
        data_dir=_q(str(data_dir)),
        query_zephyro_main=_q(zephyro[0]),
        query_zephyro_near=_q(zephyro[1]),
        query_velmora=_q(DEMO_QUERIES["Velmora Air"][0]),
        social=_q(f"{base}/feeds/social.rss"),
        news=_q(f"{base}/feeds/news.atom"),
        forum=_q(f"{base}/feeds/forum.rdf"),
        reviews=_q(f"{base}/reviews/"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
