"""A watch-term change saved in the web app reaches the running match stage without a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from listener.config import BrandConfig
from listener.records import Document, Mention, document_id
from listener.stages import LiveMatchStage
from listener.watch_versions import WatchTermStore


def doc(text: str) -> Document:
    now = datetime.now(UTC)
    return Document(
        id=document_id("feed", text), source="feed", source_type="feed", text=text, published=now, fetched=now
    )


def brands_matched(stage: LiveMatchStage, text: str) -> list[str]:
    outputs = stage.handle([doc(text)])
    return [o.record.brand for o in outputs if isinstance(o.record, Mention)]


def test_a_saved_version_applies_to_the_running_stage(tmp_path: Path) -> None:
    path = tmp_path / "web.db"
    stage = LiveMatchStage([BrandConfig(name="Acme", queries=["acme"])], path, check_every_s=0.0)
    assert brands_matched(stage, "the roadrunner is fast") == []
    assert brands_matched(stage, "acme anvils") == ["Acme"]
    WatchTermStore(path).save("Acme", ["roadrunner", "anvil*"], "ed")
    assert brands_matched(stage, "the roadrunner is fast") == ["Acme"]
    assert brands_matched(stage, "acme catalogue") == []  # the old query is gone
    history = WatchTermStore(path).history("ACME")
    assert [(v.queries, v.author) for v in history] == [(["roadrunner", "anvil*"], "ed")]


def test_a_broken_saved_version_keeps_the_current_terms(tmp_path: Path) -> None:
    path = tmp_path / "web.db"
    stage = LiveMatchStage([BrandConfig(name="Acme", queries=["acme"])], path, check_every_s=0.0)
    WatchTermStore(path).save("Acme", ["acme AND ("], "someone editing the file by hand")
    assert brands_matched(stage, "acme anvils") == ["Acme"]


def test_the_stage_checks_at_most_every_few_seconds(tmp_path: Path) -> None:
    path = tmp_path / "web.db"
    stage = LiveMatchStage([BrandConfig(name="Acme", queries=["acme"])], path, check_every_s=3600.0)
    assert brands_matched(stage, "acme") == ["Acme"]
    WatchTermStore(path).save("Acme", ["roadrunner"], "ed")
    assert brands_matched(stage, "acme") == ["Acme"]  # not re-read yet: within the interval
