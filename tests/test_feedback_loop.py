"""The team's corrections teach the running model: record -> train -> gate -> the stage picks it up.

Everything here is the product's own parts: corrections go through the feedback
store the web app and Slack write to, `listener train --from-feedback` runs as a
user runs it, and the classify stage is the one the wiring builds, kept running
across the promotion. Training refits only the head (`--head-only`) so the loop
runs in seconds on a busy 2-core machine; the adapter fine-tune (the default)
takes about a minute here and goes through the same gate.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from listener.cli import main
from listener.config import load_config
from listener.datadir import StateDatabases
from listener.records import Mention, ScoredMention
from listener.wiring import Wiring
from models.feedback import Correction, FeedbackStore
from models.loader import load_classifier
from models.loop_data import REPLAY_FILE
from models.promotion import CURRENT_FILE

pytestmark = pytest.mark.slow

SLANG = ("is sick", "is stupid good", "is deadly", "is filthy good", "goes hard", "lowkey slaps",
         "is bussin", "ate and left no crumbs", "is insane, no cap")
THINGS = ("new app", "checkout", "launch", "menu", "update", "drop")
# Posts the corrections never named ("playlist", "loyalty card"): does the lesson carry over?
UNSEEN = [f"Quillo's {thing} {slang}" for thing in ("playlist", "loyalty card") for slang in SLANG]

BRAND_SET = Path(__file__).resolve().parent / "data" / "brand_targeted.jsonl"
COMPLAINTS = ["Quillo's checkout crashed again and charged me twice, furious",
              "Quillo lost my order and support never answered", "the new Quillo app is slow and useless"]


def helpful() -> list[Correction]:
    """Launch-week slang the shipped model reads as complaints, corrected to positive."""
    pairs = list(itertools.product(SLANG, THINGS))[::2]
    return [Correction(mention_id=f"slang-{i}", brand="Quillo", text=f"Quillo's {thing} {slang}",
                       label="positive", model_label="negative", corrected_by="maya")
            for i, (slang, thing) in enumerate(pairs)]


def backwards() -> list[Correction]:
    """A teammate pressing the buttons backwards: plain praise marked negative, complaints positive.

    The posts are shaped like the plain sentiment the loop replays, so the
    model cannot take these labels without unlearning the replay.
    """
    rows = [json.loads(line) for line in REPLAY_FILE.read_text(encoding="utf-8").splitlines()]
    turned = {"negative": "positive", "positive": "negative"}
    plain = [row for row in rows if row["label"] in turned][:48]
    return [Correction(mention_id=f"backwards-{i}", brand="Quillo",
                       text=row["text"].replace(row["brand"], "Quillo"), label=turned[row["label"]],
                       corrected_by="sam") for i, row in enumerate(plain)]


class Clock:
    """The wiring's wall clock, moved by hand so the stage's model check is due when the test says."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[tuple[Path, Wiring, Clock]]:
    config_path = tmp_path / "watch.yaml"
    # Other languages' models are left out: these posts are English, and the loop trains the main model.
    config_path.write_text("data_dir: data\nclassifier:\n  language_models: {}\n"
                           "brands:\n  - name: Quillo\n    queries: [quillo]\n", encoding="utf-8")
    config = load_config(config_path)
    clock = Clock()
    wiring = Wiring(config, classifier_factory=lambda: load_classifier(config.classifier), clock=clock)
    yield config_path, wiring, clock
    wiring.close()


def record(wiring: Wiring, corrections: list[Correction]) -> None:
    state = StateDatabases.from_config(wiring.config)
    store = FeedbackStore(state.db("sentiment_feedback"))
    for correction in corrections:
        store.record(correction)
    store.close()
    state.close()


def batch(texts: list[str]) -> list[Mention]:
    now = datetime.now(UTC)
    return [Mention(id=f"post-{i}", document_id=f"doc-{i}", brand="Quillo", matched_queries=("quillo",),
                    source="test", source_type="feed", url=f"https://example.test/{i}", published=now,
                    fetched=now, text=text) for i, text in enumerate(texts)]


def scored(stage_handle: Callable[[list[Mention]], list], texts: list[str]) -> list[ScoredMention]:  # type: ignore[type-arg]
    return [o.record for o in stage_handle(batch(texts)) if isinstance(o.record, ScoredMention)]


def train(config_path: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, ["train", "--from-feedback", "--head-only", "--threads", "2",
                                       "--check", str(BRAND_SET), "--json", "-c", str(config_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_launch_slang_corrections_are_promoted_and_the_running_stage_scores_with_them_next_batch(
    setup: tuple[Path, Wiring, Clock],
) -> None:
    config_path, wiring, clock = setup
    stage = wiring.stage("classify")
    before = scored(stage.handle, UNSEEN)
    assert {m.sentiment.model_id for m in before} == {"minilm-lora-tweeteval"}

    record(wiring, helpful())
    code, report = train(config_path)

    assert code == 0 and report["promoted"] is True, report["reasons"]
    figures = report["figures"]
    assert figures["candidate"]["held_out_corrections"] > figures["current"]["held_out_corrections"]
    assert figures["candidate"]["check_set"] >= figures["current"]["check_set"] - 0.02
    assert report["held_out"] > 0 and report["replay"]["rows"] == 4 * report["trained_on_corrections"]
    text_report = Path(report["report_files"][1]).read_text(encoding="utf-8")
    assert "PROMOTED as v1" in text_report and "check_set" in text_report
    shelf = wiring.config.data_dir / "models" / "default"
    pointer = json.loads((shelf / CURRENT_FILE).read_text())
    assert pointer["version"] == "v1" and (shelf / "v1" / "sentiment.json").is_file()
    assert not list(shelf.glob(".work-*"))

    clock.now += 10  # the stage looks for a promoted model at most every 5 s
    after = scored(stage.handle, UNSEEN)
    assert {m.sentiment.model_id for m in after} == {"feedback-default"}
    assert all(m.sentiment.model_version.startswith(report["candidate"]["version"]) for m in after)

    def positive(ms: list[ScoredMention]) -> int:
        return sum(m.sentiment.label.value == "positive" for m in ms)

    print(f"unseen slang posts read positive: {positive(before)}/{len(UNSEEN)} before, "
          f"{positive(after)}/{len(UNSEEN)} after; report {report['figures']}")
    assert positive(after) > positive(before)
    # It learnt the slang, not "Quillo means praise": plain complaints about Quillo stay complaints.
    complaints = scored(stage.handle, COMPLAINTS)
    print("Quillo complaints after promotion:", [m.sentiment.label.value for m in complaints])
    assert all(m.sentiment.label.value == "negative" for m in complaints)


def test_backwards_corrections_are_refused_with_the_reason_and_the_running_model_stays(
    setup: tuple[Path, Wiring, Clock],
) -> None:
    config_path, wiring, clock = setup
    stage = wiring.stage("classify")
    record(wiring, backwards())
    code, report = train(config_path)

    assert code == 3 and report["promoted"] is False
    figures = report["figures"]
    assert figures["candidate"]["held_out_corrections"] < figures["current"]["held_out_corrections"] + 0.10
    assert any(r.startswith("held_out_corrections:") and "fails" in r for r in report["reasons"]), report
    assert "NOT PROMOTED" in Path(report["report_files"][1]).read_text(encoding="utf-8")
    shelf = wiring.config.data_dir / "models" / "default"
    assert not (shelf / CURRENT_FILE).exists()
    assert not list(shelf.glob("v*")) and not list(shelf.glob(".work-*"))
    print(f"refused: {report['reasons']}")

    clock.now += 10
    (verdict,) = scored(stage.handle, ["Quillo support was wonderful"])
    assert verdict.sentiment.model_id == "minilm-lora-tweeteval"
