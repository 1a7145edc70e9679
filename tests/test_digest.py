"""Once a week, Acme's channel thanks the people who answered for it.

Dana takes two incidents and closes them fast, Sam owns a third that an admin
(signed in as "ops <!here>", a name from outside the rotation) closes; a fourth
goes unanswered. On Monday at 09:00 UTC the digest goes to #acme-alerts through
the real slack_sdk client against the loopback stand-in: Dana and Sam are
mentioned by their configured Slack ids, the admin's name and every note are
escaped text, and the monitor's tick posts it once per week, restarts included.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from alertstory import make_alert
from click.testing import CliRunner
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, fake_slack
from state_engines import migrated

from alerts.digest import DigestLog, WeeklyDigest, week_ending
from alerts.escalation import EscalationStage
from alerts.incidents import IncidentStore
from alerts.oncall import Roster
from alerts.response import Desk
from alerts.silences import SilenceStore
from alerts.slack import SlackNotifier
from listener.cli import main
from listener.config import Config, load_config
from listener.statedb import StateDB
from listener.wiring import Wiring

WEDNESDAY = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MONDAY_9 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
ADMIN = "ops <!here>"


def watch(tmp_path: Path, slack_url: str = "http://127.0.0.1:9/api/") -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        "slack": {"bot_token": TOKEN, "base_url": slack_url},
        "brands": [
            {
                "name": "Acme",
                "queries": ["acme"],
                "slack_channel": "#acme-alerts",
                "oncall": {
                    "responders": [
                        {"name": "Dana", "slack_user": "U0DANA"},
                        {"name": "Sam", "slack_user": "U0SAM"},
                    ],
                    "handover_at": "2024-04-29T09:00:00Z",
                    "admins": [ADMIN],
                    "digest_day": "mon",
                    "digest_hour": 9,
                },
            }
        ],
    }
    path = tmp_path / "watch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def a_busy_week(config: Config, wednesday: datetime = WEDNESDAY) -> None:
    """Four incidents from Wednesday on, handled at known speeds."""
    now = [wednesday.timestamp()]
    desk = Desk(
        IncidentStore(config.data_dir / "incidents.db"),
        SilenceStore(config.data_dir / "silences.db"),
        Roster(config.brands),
        clock=lambda: now[0],
    )

    def incident(hours: float) -> str:
        start = wednesday + timedelta(hours=hours)
        now[0] = start.timestamp()
        return str(desk.open(make_alert(window_start=start, id=f"alert-{hours}", created=start)).id)

    def later(minutes: float) -> None:
        now[0] += minutes * 60

    first = incident(0)
    later(2), desk.acknowledge(first, "U0DANA"), later(30)
    desk.resolve(first, "Dana", "Refunds issued; <!channel> told")
    second = incident(24)
    later(4), desk.acknowledge(second, "Dana"), later(10), desk.resolve(second, "Dana", "Known outage")
    third = incident(48)
    later(20), desk.acknowledge(third, "U0SAM"), later(60), desk.resolve(third, ADMIN, "Closed for Sam")
    incident(50)  # nobody answers this one
    desk.close()


def weekly(config: Config, slack: FakeSlack) -> WeeklyDigest:
    client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
    return WeeklyDigest(
        IncidentStore(config.data_dir / "incidents.db"),
        config.brands,
        SlackNotifier(client, {"Acme": "#acme-alerts"}),
        DigestLog(config.data_dir / "digests.db"),
    )


def test_monday_morning_thanks_the_people_who_answered_for_acme(tmp_path: Path) -> None:
    config = load_config(watch(tmp_path))
    a_busy_week(config)
    with fake_slack() as slack:
        digest = weekly(config, slack)
        tick = MONDAY_9.timestamp() - 60
        assert digest.run_due(tick) == ["Acme"]  # the week before: no incidents, recorded, not posted
        assert slack.posted == []
        assert digest.run_due(MONDAY_9.timestamp() + 30) == ["Acme"]
        (post,) = slack.posted
        text = post.body["text"]
        assert post.body["channel"] == "#acme-alerts"
        assert text.index("<@U0DANA> handled 2") < text.index("<@U0SAM> handled 1")
        assert "median 3 min to acknowledge" in text  # Dana: 2 and 4 minutes
        assert "*ops &lt;!here&gt;* handled 1" in text and "<!here>" not in text
        assert "&lt;!channel&gt;" in text and "<!channel>" not in text
        assert "1 of 4 went unacknowledged" in text

        # Every tick of the week, and a restart, post nothing more.
        for hours in (0.25, 1, 30, 100):
            assert digest.run_due(MONDAY_9.timestamp() + hours * 3600) == []
        digest.close()
        again = weekly(config, slack)
        assert again.run_due(MONDAY_9.timestamp() + 7200) == []
        # The next Monday covers a quiet week: recorded, nothing posted.
        assert again.run_due((MONDAY_9 + timedelta(days=7)).timestamp()) == ["Acme"]
        assert len(slack.posted) == 1
        again.close()


def test_the_monitors_incidents_stage_posts_the_digest_on_its_tick(tmp_path: Path) -> None:
    with fake_slack() as slack:
        config = load_config(watch(tmp_path, slack.url))
        # Last week, as the monitor's wall clock sees it: five days before the latest Monday 09:00.
        slot = datetime.fromtimestamp(week_ending(time.time()), UTC)
        a_busy_week(config, slot - timedelta(days=5))
        wiring = Wiring(config, classifier_factory=lambda: None)  # type: ignore[arg-type,return-value]
        stage = wiring.stage("incidents")
        assert isinstance(stage, EscalationStage) and stage.digest is not None
        stage.handle([])
        stage.tick()
        stage.close()
        wiring.close()
        (post,) = slack.posted
        assert post.body["channel"] == "#acme-alerts" and "<@U0DANA> handled 2" in post.body["text"]


def test_a_failed_post_is_retried_at_the_next_tick(tmp_path: Path) -> None:
    config = load_config(watch(tmp_path))
    a_busy_week(config)
    with fake_slack() as slack:
        digest = weekly(config, slack)
        slack.fail_next(1, "500")
        assert digest.run_due(MONDAY_9.timestamp() + 5) == []
        assert digest.run_due(MONDAY_9.timestamp() + 20) == ["Acme"]
        assert len(slack.posted) == 1
        digest.close()


def test_listener_incidents_digest_prints_and_posts(tmp_path: Path) -> None:
    with fake_slack() as slack:
        path = watch(tmp_path, slack.url)
        config = load_config(path)
        # The CLI looks back seven days from now: the same week, ending an hour ago.
        a_busy_week(config, datetime.now(UTC) - (MONDAY_9 - WEDNESDAY) - timedelta(hours=1))
        result = CliRunner().invoke(main, ["incidents", "digest", "-c", str(path), "--brand", "acme"])
        assert result.exit_code == 0, result.output
        assert "Dana handled 2" in result.output and "ops <!here> handled 1" in result.output
        assert slack.posted == []
        result = CliRunner().invoke(main, ["incidents", "digest", "-c", str(path), "--post"])
        assert result.exit_code == 0, result.output
        assert "posted to #acme-alerts" in result.output
        (post,) = slack.posted
        assert "<@U0DANA>" in post.body["text"]
        bad = CliRunner().invoke(main, ["incidents", "digest", "-c", str(path), "--brand", "Nope"])
        assert bad.exit_code != 0 and "no brand" in bad.output


def test_the_schedule_is_the_last_configured_slot() -> None:
    assert week_ending(MONDAY_9.timestamp()) == MONDAY_9.timestamp()
    assert week_ending(MONDAY_9.timestamp() - 1) == (MONDAY_9 - timedelta(days=7)).timestamp()
    friday_17 = datetime(2024, 5, 3, 17, 0, tzinfo=UTC).timestamp()
    assert week_ending(MONDAY_9.timestamp(), "fri", 17) == friday_17


def test_two_incidents_copies_at_the_hour_post_the_digest_once(
    tmp_path: Path, state_db_pair: tuple[StateDB, StateDB]
) -> None:
    """Scaled out, two `incidents` processes tick at Monday 09:00 together, Slack answering slowly."""
    from alerts import digest as digest_module
    from alerts import incidents as incidents_module

    config = load_config(watch(tmp_path))
    first_db, second_db = state_db_pair
    migrated(first_db, "incidents", incidents_module.MIGRATIONS)
    migrated(first_db, "digests", digest_module.MIGRATIONS)
    IncidentStore(first_db).open_for(make_alert(), WEDNESDAY.timestamp())
    with fake_slack() as slack:
        slack.delay = 0.5
        copies = [
            WeeklyDigest(
                IncidentStore(db),
                config.brands,
                SlackNotifier(WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5), {}),
                DigestLog(db),
                "#acme-alerts",
            )
            for db in (first_db, second_db)
        ]
        results: list[list[str]] = []
        threads = [
            threading.Thread(target=lambda c=c: results.append(c.run_due(MONDAY_9.timestamp() + 5)))
            for c in copies
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(results) == [[], ["Acme"]], "one copy posts, the other finds it done"
        assert len(slack.posted) == 1
