"""Responders work incidents from the browser under the same ownership rules as Slack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.incidents import IncidentStore
from listener.records import Alert
from tests.webapp import WebWorld, csrf_of, make_world, recent


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


def open_incident(world: WebWorld, brand: str = "Acme") -> int:
    alert = Alert(
        id=Alert.make_id(brand, "negative-spike", recent(10)),
        brand=brand,
        window_start=recent(10),
        window_end=recent(0),
        observed=14,
        expected=2.5,
        total=30,
        negative_share=0.47,
        created=recent(0),
    )
    store = IncidentStore(world.config.data_dir / "incidents.db")
    try:
        incident, _ = store.open_for(alert, time.time() - 120)
    finally:
        store.close()
    return incident.id


def test_a_responder_acknowledges_then_resolves_with_a_note(world: WebWorld) -> None:
    number = open_incident(world)
    rita = world.user("rita", "responder")
    listing = rita.get("/incidents")
    assert f'href="/incidents/{number}"' in listing.text and "nobody yet" in listing.text
    token = csrf_of(rita.get(f"/incidents/{number}").text)
    assert rita.post(f"/incidents/{number}", data={"csrf": token, "action": "ack"}).status_code == 303
    done = rita.post(
        f"/incidents/{number}",
        data={"csrf": token, "action": "resolve", "note": "<b>status page</b> updated"},
    )
    assert done.status_code == 303
    detail = rita.get(f"/api/incidents/{number}").json()
    assert detail["state"] == "resolved" and detail["resolved_by"] == "rita"
    assert [e["kind"] for e in detail["events"]] == ["opened", "acknowledged", "resolved"]
    page = rita.get(f"/incidents/{number}").text
    assert "&lt;b&gt;status page&lt;/b&gt;" in page and "<b>status page" not in page
    stats = rita.get("/api/incidents/stats").json()
    assert stats["responder"][0]["key"] == "rita" and stats["responder"][0]["resolved"] == 1


def test_only_the_owner_or_an_admin_may_resolve(world: WebWorld) -> None:
    number = open_incident(world)
    rita, sam = world.user("rita", "responder"), world.user("sam", "responder")
    token_r = csrf_of(rita.get("/incidents").text)
    token_s = csrf_of(sam.get("/incidents").text)
    assert (
        sam.post(
            f"/api/incidents/{number}/resolve", json={"note": "x"}, headers={"X-CSRF-Token": token_s}
        ).status_code
        == 409
    )  # not acknowledged yet
    assert (
        rita.post(f"/api/incidents/{number}/ack", json={}, headers={"X-CSRF-Token": token_r}).status_code
        == 200
    )
    refused = sam.post(
        f"/incidents/{number}", data={"csrf": token_s, "action": "resolve", "note": "mine now"}
    )
    assert refused.status_code == 409 and "owned by rita" in refused.text
    admin = world.user("ada", "admin")
    token_a = csrf_of(admin.get("/incidents").text)
    answer = admin.post(
        f"/api/incidents/{number}/resolve",
        json={"note": "closing for rita"},
        headers={"X-CSRF-Token": token_a},
    )
    assert answer.status_code == 200 and answer.json()["resolved_by"] == "ada"


def test_viewers_read_incidents_but_cannot_act(world: WebWorld) -> None:
    number = open_incident(world)
    viewer = world.user("vic", "viewer")
    page = viewer.get(f"/incidents/{number}")
    assert page.status_code == 200 and "Acknowledge" not in page.text
    token = csrf_of(page.text)
    assert (
        viewer.post(f"/api/incidents/{number}/ack", json={}, headers={"X-CSRF-Token": token}).status_code
        == 403
    )
    assert viewer.get("/api/incidents/9999").status_code == 404


def test_the_dashboard_flags_incidents_on_the_chart(world: WebWorld) -> None:
    number = open_incident(world)
    viewer = world.user("vic", "viewer")
    html = viewer.get("/dashboard", params={"brand": "Acme", "window": "1h"}).text
    assert f"<title>incident #{number} (open): 14 negative</title>" in html
    assert "incident #" not in viewer.get("/dashboard", params={"brand": "Globex", "window": "1h"}).text
