"""A brand's channel hears when one of its sources breaks, once, and when it recovers."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_server import TOKEN, fake_slack

from alerts.slack import SlackNotifier
from alerts.source_notices import SourceNotices
from crawlers.health import HealthLog
from listener.config import load_config

WATCH = """\
data_dir: data
slack: {{default_channel: "#listening-ops"}}
brands:
  - name: Zephyro Fiber
    slack_channel: "#zephyro"
    queries: [zephyro]
    sources:
      - {{type: hackernews, name: "hn <!channel>", query: zephyro, base_url: "http://127.0.0.1:9"}}
  - name: Velmora Air
    queries: [velmora]
    sources:
      - {{type: hackernews, name: "hn <!channel>", query: zephyro, base_url: "http://127.0.0.1:9"}}
"""
T0 = 1_763_600_000.0


def test_a_failing_source_is_announced_once_per_brand_channel_escaped_and_its_recovery_too(tmp_path):
    path = tmp_path / "watch.yaml"
    path.write_text(WATCH.format())
    config = load_config(path)
    log = HealthLog(config.data_dir / "fetch.db")
    with fake_slack() as slack:
        notifier = SlackNotifier(WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[]))
        notices = SourceNotices(config, notifier)
        for n in range(3):
            log.record("hn <!channel>", ok=False, error="<script>HTTP 503</script> @here", when=T0 + n)
        assert notices.check(now=T0 + 10) == 2
        assert notices.check(now=T0 + 20) == 0  # nothing changed, nothing posted
        assert SourceNotices(config, notifier).check(now=T0 + 30) == 0  # nor after a restart
        texts = {r.body["channel"]: r.body["text"] for r in slack.posted}
        assert set(texts) == {"#zephyro", "#listening-ops"}
        text = texts["#zephyro"]
        assert "failed 3 polls in a row" in text and "HTTP 503" in text
        assert "<!channel>" not in text and "<script>" not in text and "@here" not in text
        log.record("hn <!channel>", ok=True, items=2, when=T0 + 40)
        assert notices.check(now=T0 + 50) == 2
        assert "working again" in slack.posted[-1].body["text"]
