"""Analysts search and export, read a brand's dashboard, tune watch terms and correct the model."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listener.web.render import highlight, safe_url
from tests.store_contract import make_mention
from tests.webapp import WebWorld, csrf_of, make_world, recent, seed


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


@pytest.fixture
def analyst(world: WebWorld) -> TestClient:
    seed(world.store)
    return world.user("ana", "viewer")


# --- search -------------------------------------------------------------------------------------


def test_search_finds_with_the_query_language_and_highlights(analyst: TestClient) -> None:
    page = analyst.get("/search", params={"q": "acme AND (battery OR support)", "order": "relevance"})
    assert page.status_code == 200
    assert "2 mention(s)" in page.text
    assert "<mark>battery</mark>" in page.text
    assert 'href="https://news.example.com/n1"' in page.text
    answer = analyst.get("/api/search", params={"q": "acme", "sentiment": "negative"}).json()
    assert answer["total"] == 2
    assert {h["sentiment"] for h in answer["hits"]} == {"negative"}


def test_a_syntax_error_shows_the_same_caret_as_the_cli(analyst: TestClient) -> None:
    page = analyst.get("/search", params={"q": "acme AND (battery"})
    assert page.status_code == 400
    caret = re.search(r'<pre class="caret">(.*?)</pre>', page.text, re.DOTALL)
    assert caret is not None
    lines = caret.group(1).split("\n")
    assert lines[1].strip() == "acme AND (battery"
    api = analyst.get("/api/search", params={"q": "acme AND (battery"}).json()
    assert api["column"] == lines[2].index("^") - 1
    assert api["caret"].endswith("^")


def test_filters_narrow_by_brand_site_language_source_and_time(analyst: TestClient) -> None:
    def total(**params: str) -> int:
        answer = analyst.get("/api/search", params=params)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["total"])

    assert total() == 5
    assert total(brand="Acme") == 4
    assert total(brand="Globex") == 1
    assert total(site="FORUM.example.org") == 1
    assert total(lang="de") == 1
    assert total(source="acme-news") == 5
    assert total(since="100m") == 3
    assert total(since="1d", until=recent(100).isoformat()) == 2
    assert analyst.get("/api/search", params={"since": "yesterday-ish"}).status_code == 400


def test_paging_walks_the_whole_result_newest_first(world: WebWorld, analyst: TestClient) -> None:
    world.store.upsert([make_mention(f"acme note {i}", published=recent(i), key=f"k{i}") for i in range(45)])
    seen: list[str] = []
    for page in (1, 2, 3):
        hits = analyst.get("/api/search", params={"q": "note", "page": str(page)}).json()["hits"]
        seen += [h["text"] for h in hits]
    assert seen == [f"acme note {i}" for i in range(45)]
    html = analyst.get("/search", params={"q": "note", "page": "2"}).text
    assert "page 2 of 3" in html and "page=3" in html and "page=1" in html


def test_a_count_past_the_limit_is_shown_as_a_lower_bound(
    world: WebWorld, analyst: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("listener.web.search.COUNT_LIMIT", 30)  # 10,000 in production
    world.store.upsert([make_mention(f"acme note {i}", published=recent(i), key=f"k{i}") for i in range(45)])
    answer = analyst.get("/api/search", params={"q": "note", "page": "2"}).json()
    assert (answer["total"], answer["total_at_least"]) == (30, True)
    assert len(answer["hits"]) == 20  # pages are whole past the count
    html = analyst.get("/search", params={"q": "note", "page": "2"}).text
    assert "30+ mention(s)" in html and "page 2 of 2+" in html and "page=3" in html
    exact = analyst.get("/api/search", params={"q": "acme AND battery"}).json()
    assert exact["total_at_least"] is False


def test_export_writes_the_whole_result_set_as_csv_and_json(world: WebWorld, analyst: TestClient) -> None:
    world.store.upsert([make_mention('=HYPERLINK("http://evil") acme', key="formula")])
    answer = analyst.get("/api/search/export", params={"q": "acme", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert answer.headers["content-disposition"].endswith('mentions.csv"')
    assert len(rows) == 5
    formula = next(r for r in rows if "HYPERLINK" in r["text"])
    assert formula["text"].startswith("'=")  # a spreadsheet shows it, does not run it
    lines = analyst.get("/api/search/export", params={"q": "acme", "format": "json"}).text.splitlines()
    assert {json.loads(line)["id"] for line in lines} == {r["id"] for r in rows}


# --- hostile mentions ---------------------------------------------------------------------------

HOSTILE = [
    ("<script>alert(1)</script> acme", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('acme <img src=x onerror="alert(2)">', "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;"),
    ("acme [[<b>]] not markup", "&lt;b&gt;"),
    ("acme \u202egnp.exe", "gnp.exe"),
]


@pytest.mark.parametrize(("text", "shown"), HOSTILE)
def test_hostile_mention_text_is_shown_as_text(world: WebWorld, text: str, shown: str) -> None:
    world.store.upsert(
        [
            make_mention(
                text,
                key="hostile",
                title="<svg onload=alert(3)>",
                author='"><script>x</script>',
                url="javascript:alert(4)",
            )
        ]
    )
    client = world.user("ana", "viewer")
    html = client.get("/search", params={"q": "acme"}).text
    assert shown in html
    for bad in ("<script>alert", "<img src", 'onerror="', "<svg onload", "javascript:", "<b>", "\u202e"):
        assert bad not in html, bad
    assert "&lt;svg onload=alert(3)&gt;" in html


def test_only_http_links_become_links() -> None:
    assert safe_url("https://example.com/a?b=c") == "https://example.com/a?b=c"
    assert safe_url("http://example.com") == "http://example.com"
    for bad in (
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:x",
        "data:text/html,x",
        "vbscript:x",
        "//evil.example",
        "/relative",
        "https://",
        "http://a b.example",
        None,
        "",
    ):
        assert safe_url(bad) is None, bad


def test_highlight_escapes_before_it_marks() -> None:
    assert str(highlight("a [[<i>x</i>]] b <u>")) == "a <mark>&lt;i&gt;x&lt;/i&gt;</mark> b &lt;u&gt;"
    assert str(highlight("unbalanced [[ <x>")) == "unbalanced [[ &lt;x&gt;"


def test_a_very_long_word_cannot_break_the_page(world: WebWorld) -> None:
    world.store.upsert([make_mention("acme " + "A" * 5000, key="long")])
    client = world.user("ana", "viewer")
    assert client.get("/search", params={"q": "acme"}).status_code == 200
    css = client.get("/static/app.css").text
    assert "overflow-wrap: anywhere" in css


# --- dashboard ----------------------------------------------------------------------------------


def test_dashboard_shows_volume_sentiment_and_who_is_talking(analyst: TestClient) -> None:
    data = analyst.get("/api/dashboard/Acme", params={"window": "6h"}).json()
    assert data["total"] == 4
    assert data["counts"] == {"negative": 2, "neutral": 1, "positive": 1, "unscored": 0}
    assert data["negative_share"] == 0.5
    assert sum(sum(b["counts"].values()) for b in data["buckets"]) == 4
    assert {"value": "forum.example.org", "count": 1} in data["top"]["site"]
    assert data["top"]["author"] == [{"value": "dana", "count": 1}]
    terms = {row["value"]: row["count"] for row in data["top"]["term"]}
    assert terms["battery"] == 1 and "acme" not in terms and "the" not in terms
    html = analyst.get("/dashboard", params={"brand": "Acme", "window": "6h"}).text
    assert "<svg" in html and 'fill="#c62828"' in html
    assert "50%</strong> negative" in html
    assert analyst.get("/api/dashboard/Initech").status_code == 404
    assert analyst.get("/api/dashboard/Acme", params={"window": "forever"}).status_code == 400


def test_the_window_picker_excludes_older_mentions(analyst: TestClient) -> None:
    one_hour = analyst.get("/api/dashboard/Acme", params={"window": "1h"}).json()
    assert one_hour["total"] == 1


# --- watch terms --------------------------------------------------------------------------------


def test_editor_previews_then_saves_a_watch_query_and_history_records_it(world: WebWorld) -> None:
    seed(world.store)
    editor = world.user("ed", "editor", "Acme")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    bad = editor.post(
        "/watch-terms/Acme", data={"csrf": token, "queries": "acme\nacme AND (", "action": "save"}
    )
    assert bad.status_code == 400
    assert "Line 2" in bad.text and '<pre class="caret">' in bad.text
    preview = editor.post(
        "/watch-terms/Acme",
        data={"csrf": token, "queries": "acme battery OR acme support", "action": "preview"},
    )
    assert "would have matched 2 mention(s) in the last 7 days; here are 2" in preview.text
    saved = editor.post(
        "/watch-terms/Acme", data={"csrf": token, "queries": "acme\nacme phone", "action": "save"}
    )
    assert saved.status_code == 303
    terms = editor.get("/api/watch-terms/Acme").json()
    assert terms["queries"] == ["acme", "acme phone"]
    assert terms["history"][0]["author"] == "ed"
    assert "by ed" in editor.get("/watch-terms/Acme").text


def test_a_watch_query_must_name_a_word(world: WebWorld) -> None:
    editor = world.user("ed", "editor")
    assert editor.get("/api/query/check", params={"q": "NOT acme"}).json()["ok"] is False
    assert editor.get("/api/query/check", params={"q": "NOT acme", "watch": "false"}).json() == {"ok": True}
    check = editor.get("/api/query/check", params={"q": "acme NEAR/x phone"}).json()
    assert check["ok"] is False and check["column"] > 1


def test_api_preview_counts_matches_in_history(analyst: TestClient) -> None:
    answer = analyst.get("/api/watch-terms/Acme/preview", params={"q": "acme"}).json()
    assert answer["total"] == 4 and len(answer["hits"]) == 4


# --- feedback -----------------------------------------------------------------------------------


def test_feedback_on_a_mention_is_stored_for_training(world: WebWorld, tmp_path: Path) -> None:
    seed(world.store)
    viewer = world.user("vic", "viewer")
    hit = viewer.get("/api/search", params={"q": "launch"}).json()["hits"][0]
    page = viewer.get("/search", params={"q": "launch"})
    token = csrf_of(page.text)
    answer = viewer.post(
        f"/mentions/{hit['id']}/feedback",
        data={"csrf": token, "kind": "wrong_sentiment", "label": "positive", "back": "/search?q=launch"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/search?q=launch"
    answer = viewer.post(
        f"/api/mentions/{hit['id']}/feedback",
        json={"kind": "not_about_brand"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 201
    kinds = viewer.get(f"/api/mentions/{hit['id']}/feedback").json()
    assert [(k["kind"], k["label"], k["model_label"], k["user"]) for k in kinds] == [
        ("wrong_sentiment", "positive", "neutral", "vic"),
        ("not_about_brand", None, "neutral", "vic"),
    ]
    training = tmp_path / "data" / "feedback.db"
    if training.exists():  # written when the classifier's corrections module is installed
        with sqlite3.connect(training) as db:
            assert db.execute("SELECT label FROM sentiment_feedback").fetchall() == [("positive",)]
    assert (
        viewer.post(
            "/api/mentions/nope/feedback", json={"kind": "not_about_brand"}, headers={"X-CSRF-Token": token}
        ).status_code
        == 404
    )
    assert (
        viewer.post(f"/mentions/{hit['id']}/feedback", data={"csrf": token, "kind": "x"}).status_code == 400
    )


def test_the_openapi_schema_documents_the_api(analyst: TestClient) -> None:
    paths = analyst.get("/openapi.json").json()["paths"]
    for path in (
        "/api/search",
        "/api/search/export",
        "/api/dashboard/{brand}",
        "/api/watch-terms/{brand}",
        "/api/mentions/{mention_id}/feedback",
        "/healthz",
    ):
        assert path in paths, path
    assert "/search" not in paths  # pages are not API
