"""An analyst folds one syndicated article into one hit instead of paging through its copies."""

from __future__ import annotations

from pathlib import Path

from tests.store_contract import make_mention
from tests.webapp import make_world


def test_search_can_show_one_hit_per_story(tmp_path: Path) -> None:
    world = next(make_world(tmp_path))
    copies = [
        make_mention(
            f"Acme recalls its kettles after fires, copy {i}", site=f"news{i}.example", story_id="s1"
        )
        for i in range(5)
    ]
    other = make_mention("Acme support was quick and friendly today", story_id="s2")
    world.store.upsert([*copies, other])
    analyst = world.user("ana", "viewer")

    flat = analyst.get("/api/search", params={"q": "acme"}).json()
    assert flat["total"] == 6

    folded = analyst.get("/api/search", params={"q": "acme", "stories": "1"}).json()
    assert folded["total"] == 2
    assert sorted(hit["story_members"] for hit in folded["hits"]) == [1, 5]

    page = analyst.get("/search", params={"q": "acme", "stories": "1"})
    assert page.status_code == 200
    assert "2 story(ies)" in page.text
    assert "one story, 5 mentions" in page.text
    assert 'name="stories" value="1" checked' in page.text
    world.store.close()
