"""Acme's bad afternoon on the distributed deployment: every stage its own process.

The brand team watches Acme and Globex. The deployment is what a compose file
runs: `listener migrate` on a fresh PostgreSQL schema, then two `detect`
copies in one consumer group, one `notify`, one `incidents`, Slack's button
endpoint (`interactivity`) and the `web` app, each a separate
`listener run --stage` process sharing the Kafka-protocol broker, the
PostgreSQL state and the loopback Slack. Crawling and classification are not
part of this story: already-scored mentions are published straight onto
`mentions.scored`, keyed by brand, as classify publishes them.

A quiet hour, then complaints about Acme pile up. One alert reaches Slack with
its buttons and one incident opens; nobody answers within the rota's
five-second response time, so Lee is paged. Mid-crisis the notify process
and a detect copy are killed with SIGKILL and started again: the spike's
growth still reaches the thread, and nothing is posted twice. Dana
acknowledges from Slack, the spike ends, she resolves the incident from the
web app's API, and the weekly digest thanks her for it.

The search store is not needed by any stage here; the web app opens the
embedded one. (Elasticsearch could not be used from watch.yaml alone anyway:
the test server, osmem, needs a client transport that no config key sets.)
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import pytest
from alertstory import oncall_rota
from slack_server import TOKEN, FakeSlack, RecordedRequest, fake_slack
from slackactions import SECRET, button, press
from stageprocs import Deployment, StageProcess, Timeline, answers_ok, free_port, partition_of, small_rule

from alerts.incidents import IncidentStore
from alerts.slack import fallback_text
from listener.records import Alert
from listener.statedb import PostgresStateDB

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ACME, GLOBEX = "Acme", "Globex"
PASSWORD = "dana-has-a-long-password"


def brands() -> list[dict[str, Any]]:
    """Acme has the rota (Dana, Sam, Lee; Lee is the escalation) with a five-second response time."""
    return [
        {
            "name": ACME,
            "queries": ["acme"],
            "slack_channel": "#acme-alerts",
            "alert": small_rule(),
            "oncall": oncall_rota("#acme-escalations", response_time="5s"),
        },
        {"name": GLOBEX, "queries": ["globex"], "slack_channel": "#globex-alerts", "alert": small_rule()},
    ]


class WebApi:
    """The web app's JSON API, as a script holding Dana's API token calls it."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def up(self) -> bool:
        return answers_ok(f"{self.base}/healthz")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), json.loads(response.read())
        except HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"null")

    def incidents(self) -> list[dict[str, Any]]:
        status, found = self.call("GET", "/api/incidents")
        assert status == 200, found
        return list(found)


def alert_posts(slack: FakeSlack) -> list[RecordedRequest]:
    """Alert messages (the firing one and its thread replies), not escalations or digests."""
    return [p for p in slack.posted if "alert " in json.dumps(p.body.get("blocks") or [])]


def alert_id_of(post: RecordedRequest) -> str:
    context = [b for b in post.body["blocks"] if b["type"] == "context"][-1]
    found = re.search(r"alert (\S+)$", context["elements"][0]["text"])
    assert found is not None
    return found.group(1)


def in_thread(slack: FakeSlack, ts: str, text: str) -> list[dict[str, Any]]:
    return [p.body for p in slack.posted if p.body.get("thread_ts") == ts and text in p.body["text"]]


def updates(deployment: Deployment) -> list[Alert]:
    return [a for a in deployment.alerts() if a.status == "update"]


def seconds_since(moment: datetime | None) -> float:
    assert moment is not None
    return (datetime.now(UTC) - moment).total_seconds()


def test_a_crisis_is_alerted_once_escalated_acknowledged_and_resolved_across_stage_processes(
    tmp_path: Path, kafka_bootstrap: str, postgres_server_url: str
) -> None:
    with fake_slack() as slack:
        story = CrisisStory(tmp_path, kafka_bootstrap, postgres_server_url, slack)
        try:
            story.the_operator_migrates_and_starts_every_stage()
            story.acme_customers_complain_and_one_alert_opens_one_incident()
            story.nobody_answers_so_lee_is_paged()
            story.notify_and_a_detect_copy_crash_mid_crisis_and_nothing_is_lost()
            story.dana_acknowledges_in_slack()
            story.the_complaints_stop_and_the_spike_ends()
            story.dana_resolves_from_the_web_app()
            story.every_alert_reached_slack_exactly_once()
            story.the_weekly_digest_thanks_dana()
        finally:
            failures = story.deployment.stop()
        assert not failures, "\n".join(failures)


class CrisisStory:
    """The deployment, the loopback Slack and what the story has learnt so far."""

    def __init__(self, root: Path, kafka_bootstrap: str, postgres_url: str, slack: FakeSlack) -> None:
        self.slack = slack
        self.button_port, self.web_port = free_port(), free_port()
        settings = {
            "bot_token": TOKEN,
            "base_url": slack.url,
            "signing_secret": SECRET,
            "interactivity_port": self.button_port,
        }
        self.deployment = Deployment(root, kafka_bootstrap, postgres_url, brands(), slack=settings)
        self.timeline = Timeline()
        self.web = WebApi(self.web_port, "")
        self.detects: list[StageProcess] = []
        self.notify: StageProcess | None = None
        self.alert: RecordedRequest | None = None
        self.ts = self.alert_id = ""
        self.incident = 0

    def the_operator_migrates_and_starts_every_stage(self) -> None:
        deployment = self.deployment
        assert "migrated" in deployment.cli("migrate")
        deployment.cli(
            "users", "add", "dana", "--role", "responder", "--password-stdin", stdin=PASSWORD + "\n"
        )
        self.web.token = deployment.cli("users", "token", "dana", "--label", "on-call script").strip()
        self.detects = [deployment.start("detect"), deployment.start("detect")]
        others = [deployment.start(stage) for stage in ("notify", "incidents", "interactivity")]
        self.notify = others[0]
        deployment.start("web", "--web-port", str(self.web_port))
        deployment.wait_healthy([*self.detects, *others])
        deployment.wait_for("the web app", self.web.up)
        time.sleep(8)  # the consumer groups settle: joins on Tansu complete a few seconds apart

    def acme_customers_complain_and_one_alert_opens_one_incident(self) -> None:
        deployment, slack = self.deployment, self.slack
        deployment.publish(self.timeline.quiet([ACME, GLOBEX]))  # a quiet hour for both brands
        time.sleep(2)
        deployment.publish(self.timeline.burst(ACME, 3, others=[GLOBEX]))
        (alert,) = deployment.wait_for("the alert in Slack", lambda: alert_posts(slack), 60)
        assert alert.body["channel"] == "#acme-alerts"
        assert "listener.ack" in json.dumps(alert.body["blocks"]), "the alert carries the response buttons"
        self.alert, self.ts, self.alert_id = alert, alert.response["ts"], alert_id_of(alert)
        (incident,) = deployment.wait_for("Acme's incident", self.web.incidents)
        assert incident["brand"] == ACME and incident["state"] == "open"
        assert incident["alert_id"] == self.alert_id
        self.incident = incident["id"]

    def nobody_answers_so_lee_is_paged(self) -> None:
        """The rota's response time is five seconds; the incidents process pages the next level."""
        slack = self.slack
        paged = self.deployment.wait_for(
            "Lee paged", lambda: [p.body for p in slack.posted if "<@U0LEE>" in p.body["text"]]
        )
        assert paged[0]["channel"] == "#acme-escalations"
        self.deployment.wait_for("the page in the thread", lambda: in_thread(slack, self.ts, "<@U0LEE>"), 20)
        assert self.web.call("GET", f"/api/incidents/{self.incident}")[1]["level"] == 1

    def notify_and_a_detect_copy_crash_mid_crisis_and_nothing_is_lost(self) -> None:
        deployment, slack = self.deployment, self.slack
        assert self.notify is not None
        deployment.kill(self.notify)
        (acme_reader,) = [d for d in self.detects if partition_of(ACME) in d.partitions()]
        deployment.kill(acme_reader)
        deployment.start("detect")
        # The complaints double; the detect copies take Acme over and tell of it on the bus...
        deployment.wait_for("half a minute of crisis", lambda: seconds_since(self.timeline.cursor) >= 30, 40)
        deployment.publish(self.timeline.burst(ACME, 6, others=[GLOBEX]))
        deployment.wait_for("the spike's growth on the bus", lambda: updates(deployment), 90)
        assert not in_thread(slack, self.ts, "Still rising"), "nobody is there to post it yet"
        # ...and the restarted notify process posts it in the alert's thread.
        deployment.start("notify")
        rising = deployment.wait_for(
            "the growth in the thread", lambda: in_thread(slack, self.ts, "Still rising")
        )
        assert all(r["reply_broadcast"] in (False, "0", "false") for r in rising)

    def dana_acknowledges_in_slack(self) -> None:
        assert self.alert is not None
        message = {"ts": self.ts, "blocks": self.alert.body["blocks"]}
        url = f"http://127.0.0.1:{self.button_port}/slack/actions"
        assert press(url, button("ack", self.alert_id, "U0DANA", message, "#acme-alerts")) == 200
        status, acked = self.web.call("GET", f"/api/incidents/{self.incident}")
        assert status == 200 and acked["state"] == "acknowledged" and acked["owner"] == "Dana"
        assert "Acknowledged* by Dana" in json.dumps(self.slack.calls("chat.update")[-1].body["blocks"])

    def the_complaints_stop_and_the_spike_ends(self) -> None:
        """Once a whole window, the rule's hold and the lateness bucket have gone by without
        complaints (over a minute of publishing), the detectors call the spike over."""
        deployment = self.deployment
        deployment.wait_for(
            "the crisis behind the clock", lambda: seconds_since(self.timeline.cursor) >= 72, 80
        )
        deployment.publish(self.timeline.chatter([ACME, GLOBEX]))
        (over,) = deployment.wait_for(
            "the end of the spike", lambda: in_thread(self.slack, self.ts, "is over"), 30
        )
        assert over["reply_broadcast"] in (True, "1", "true")

    def dana_resolves_from_the_web_app(self) -> None:
        """Her web account is `dana`; the rota calls her Dana, and she owns the incident."""
        note = {"note": "Payment provider outage; refunds sent"}
        status, resolved = self.web.call("POST", f"/api/incidents/{self.incident}/resolve", note)
        assert status == 200, resolved
        assert resolved["state"] == "resolved" and resolved["resolved_by"] == "Dana"
        # The trail in PostgreSQL tells it all, and the whole crisis was one incident.
        store = IncidentStore(PostgresStateDB(self.deployment.state_url))
        try:
            assert [i.id for i in store.find()] == [self.incident]
            kinds = [e.kind for e in store.events(self.incident)]
        finally:
            store.close()
        assert kinds[0] == "opened" and "update" in kinds and kinds[-1] == "resolved"
        assert kinds.index("escalated") < kinds.index("acknowledged")

    def every_alert_reached_slack_exactly_once(self) -> None:
        """What the detectors published, read back from the bus, against what Slack received."""
        published = self.deployment.alerts()
        assert {(a.brand, a.id) for a in published} == {(ACME, self.alert_id)}, "Globex stayed quiet"
        assert [a.status for a in published].count("firing") == 1
        assert {a.status for a in published} == {"firing", "update", "resolved"}
        posted = Counter(p.body["text"] for p in alert_posts(self.slack))
        assert posted == Counter({fallback_text(a): 1 for a in published}), "each posted once, none lost"

    def the_weekly_digest_thanks_dana(self) -> None:
        out = self.deployment.cli("incidents", "digest", "--brand", ACME, "--post")
        assert "posted to #acme-alerts" in out
        digest = [p.body["text"] for p in self.slack.posted if "Thank you" in p.body["text"]]
        assert len(digest) == 1 and "<@U0DANA> handled 1" in digest[0]
