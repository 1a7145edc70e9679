"""The dashboard over the Elasticsearch store: the "who is talking" tables are filled there too."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_store_elasticsearch import es_store

from listener.config import Config
from listener.web import create_app
from listener.web.accounts import AccountStore
from tests.webapp import PASSWORD, login, seed

pytestmark = [pytest.mark.elasticsearch]


def test_top_sources_sites_and_authors_come_from_elasticsearch(
    tmp_path: Path, elasticsearch_url: str
) -> None:
    config = Config.model_validate(
        {"data_dir": str(tmp_path / "data"), "brands": [{"name": "Acme", "queries": ["acme"]}]}
    )
    store = es_store(elasticsearch_url)
    seed(store)  # type: ignore[arg-type]
    store.refresh()
    accounts = AccountStore(tmp_path / "data" / "web.db")
    accounts.add_user("ann", "viewer", PASSWORD)
    client = TestClient(create_app(config, store, accounts=accounts), follow_redirects=False)
    login(client, "ann", PASSWORD)
    top = client.get("/api/dashboard/Acme").json()["top"]
    assert top["site"][0] == {"value": "news.example.com", "count": 2}
    assert {"value": "forum.example.org", "count": 1} in top["site"]
    assert top["author"] == [{"value": "dana", "count": 1}]
    assert top["source"] == [{"value": "acme-news", "count": 4}]
    html = client.get("/dashboard").text
    assert "forum.example.org" in html and "none in this window" not in html.split("Top terms")[0]
    store.close()
