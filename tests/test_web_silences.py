"""During a planned outage a responder mutes the brand from the web API; the notify path honours it."""

from __future__ import annotations

import time
from pathlib import Path

from alerts.silences import SilenceStore
from tests.webapp import csrf_of, make_world


def test_a_responder_mutes_a_brand_and_a_viewer_may_only_look(tmp_path: Path) -> None:
    world = next(make_world(tmp_path))
    rita = world.user("rita", "responder")
    vic = world.user("vic", "viewer")
    token_r = csrf_of(rita.get("/incidents").text)
    token_v = csrf_of(vic.get("/search").text)

    refused = vic.post(
        "/api/silences", json={"brand": "Acme", "duration": "1h"}, headers={"X-CSRF-Token": token_v}
    )
    assert refused.status_code == 403
    assert rita.post("/api/silences", json={"brand": "Acme", "duration": "1h"}).status_code == 403, (
        "no CSRF token"
    )
    assert (
        rita.post(
            "/api/silences", json={"brand": "Nobody", "duration": "1h"}, headers={"X-CSRF-Token": token_r}
        ).status_code
        == 404
    )
    assert (
        rita.post(
            "/api/silences", json={"brand": "Acme", "duration": "soon"}, headers={"X-CSRF-Token": token_r}
        ).status_code
        == 400
    )

    made = rita.post(
        "/api/silences",
        json={"brand": "acme", "duration": "2h", "reason": "planned maintenance"},
        headers={"X-CSRF-Token": token_r},
    ).json()
    assert made["brand"] == "Acme" and made["created_by"] == "rita" and made["active"]
    assert 7100 < made["ends"] - made["starts"] <= 7200

    store = SilenceStore(world.config.data_dir / "silences.db")
    assert store.matching("Acme", "negative-spike", time.time()) is not None, "the notify path sees it"
    store.close()
    assert [s["id"] for s in vic.get("/api/silences").json()] == [made["id"]]

    ended = rita.delete(f"/api/silences/{made['id']}", headers={"X-CSRF-Token": token_r})
    assert ended.status_code == 200 and not ended.json()["active"]
    assert vic.get("/api/silences").json() == []
    assert len(vic.get("/api/silences", params={"include_expired": True}).json()) == 1
    world.store.close()
