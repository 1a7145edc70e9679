"""An analyst searching the history sees one wire story once, with how many sites ran it,
instead of scrolling past the same article again and again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from listener.cli import main
from listener.config import load_config
from listener.records import Document, Mention, ScoredMention, Sentiment, SentimentLabel, document_id
from listener.stage_process import build_stage
from listener.stories import StoryIndex

WIRE = (
    "Acme broadband outage leaves thousands of homes without internet for a second day, "
    "the company says engineers are still working on a fix and customers may claim a refund"
)
SITES = ["daily.example", "herald.example", "courier.example", "gazette.example"]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text("data_dir: data\nbrands:\n  - name: acme\n    queries: ['acme']\n")
    return path


def mention(key: str, text: str, site: str, minutes: int) -> ScoredMention:
    when = datetime.now(UTC) - timedelta(hours=1) + timedelta(minutes=minutes)
    doc = Document(
        id=document_id("news", key),
        source="news",
        source_type="feed",
        url=f"https://{site}/{key}",
        site=site,
        text=text,
        published=when,
        fetched=when,
    )
    verdict = Sentiment(label=SentimentLabel.NEGATIVE, negative=0.9, model_id="test", model_version="1")
    return ScoredMention.from_mention(Mention.from_document(doc, "acme", ("acme",)), verdict)


def no_classifier() -> object:
    raise AssertionError("the index stage needs no classifier")


def test_the_index_process_files_stories_and_search_collapses_them(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    config = load_config(config_path)
    stage = build_stage("index", config, no_classifier)  # type: ignore[arg-type]
    copies = [
        mention(f"wire-{i}", f"{site.split('.')[0]} reports: {WIRE}", site, i) for i, site in enumerate(SITES)
    ]
    other = mention("own", "Acme support hung up on me twice today", "forum.example", 30)
    batch = [*copies, other]
    stage.handle(batch)
    stage.handle(batch)  # a redelivered batch changes nothing

    stories = StoryIndex(config.data_dir / "stories.db")
    assert len({stories.story_of(m.id) for m in copies}) == 1
    assert stories.story_of(other.id) not in {stories.story_of(m.id) for m in copies}
    stories.close()

    runner = CliRunner()
    plain = runner.invoke(main, ["search", "acme", "-c", str(config_path)])
    assert plain.exit_code == 0, plain.output
    assert plain.output.startswith(f"{len(batch)} mention(s)")

    collapsed = runner.invoke(main, ["search", "acme", "-c", str(config_path), "--collapse-stories"])
    assert collapsed.exit_code == 0, collapsed.output
    assert collapsed.output.startswith("2 story(ies); showing 2")

    with pytest.MonkeyPatch.context() as patch:  # 10,000 in production
        patch.setattr("pipelines.store.SHOWN_COUNT_LIMIT", 3)
        capped = runner.invoke(main, ["search", "acme", "-c", str(config_path), "--limit", "2"])
    assert capped.exit_code == 0, capped.output
    assert capped.output.startswith("3+ mention(s); showing 2")  # counting stopped: a lower bound
    assert f"story: {len(copies)} mentions" in collapsed.output
    assert collapsed.output.count("reports:") == 1

    rows = runner.invoke(main, ["search", "acme", "-c", str(config_path), "--collapse-stories", "--json"])
    members = sorted(json.loads(line)["story_members"] for line in rows.output.splitlines())
    assert members == [1, len(copies)]
