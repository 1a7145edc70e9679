"""A brand team sees a failing source in the API, not just a mysteriously quiet brand."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from crawlers.health import HealthLog
from listener.config import Config
from listener.web.accounts import AccountStore
from listener.web.app import create_app
from pipelines.store_sqlite import EmbeddedStore
from tests.webapp import PASSWORD, login


def test_the_sources_api_flags_a_failing_source_and_needs_a_login(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = Config.model_validate(
        {
            "data_dir": str(data),
            "brands": [
                {
                    "name": "Acme",
                    "queries": ["acme"],
                    "sources": [
                        {"type": "feed", "name": "acme-news", "url": "http://127.0.0.1:9/a.rss"},
                        {"type": "feed", "name": "acme-blog", "url": "http://127.0.0.1:9/b.rss"},
                    ],
                }
            ],
        }
    )
    data.mkdir(parents=True)
    log = HealthLog(data / "fetch.db")
    now = time.time()
    for minutes_ago in (15, 10, 5):
        log.record("acme-news", ok=False, error="connection refused", when=now - minutes_ago * 60)
        log.record("acme-blog", ok=True, items=3, when=now - minutes_ago * 60)
    store = EmbeddedStore(data / "store.db")
    accounts = AccountStore(data / "web.db")
    client = TestClient(create_app(config, store, accounts=accounts), follow_redirects=False)

    assert client.get("/api/sources").status_code in (401, 303)

    accounts.add_user("ana", "viewer", PASSWORD, ())
    login(client, "ana", PASSWORD)
    body = client.get("/api/sources").json()
    rows = {row["source"]: row for row in body["sources"]}
    assert set(rows) == {"acme-news", "acme-blog"}
    assert "failing" in rows["acme-news"]["flags"]
    assert rows["acme-news"]["last_error"] == "connection refused"
    assert rows["acme-blog"]["flags"] == []
    assert body["flagged"] == ["acme-news"]
    store.close()
